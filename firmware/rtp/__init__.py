"""RTP and RTCP (RFC 3550): packets, RTCP reports, RFC 4733 telephone-events, RFC 7983 demultiplexing."""

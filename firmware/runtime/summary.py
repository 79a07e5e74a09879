"""The JSON summary that `sotto call` and `sotto answer` print (issue 2 contract; automation parses it).

    {"result": "completed"|"failed"|"rejected"|"timeout", "reason": str, "sip_status": int,
     "registered": bool, "codec": "PCMU"|..., "encryption": "zrtp"|"sdes"|"none",
     "secure": bool, "sas": str|null, "sas_type": "B32"|"B256"|null,
     "zrtp": {"key_agreement", "cipher", "hash", "auth_tag", "verified": bool, "cache_mismatch": bool,
              "peer_zid": hex, "secure_ms": float},
     "rtp": {"sent", "received", "lost", "late", "auth_failures", "replays": int}}

Extra keys may be added (e.g. "alarms", "rtp.jitter_ms", "rtp.recovered" (lost packets rebuilt from RFC 2198
redundancy), "actions" for `--at`: [{"at", "action", "result"}],
"transfer" when the call moved to another dialog: {"role": "transferee", "target": URI, "attended": bool,
"status": the new call's final SIP status or null} after a REFER we followed (--follow-transfer), with
"resumed": true when that call failed and the original call went on (the other keys then describe it), or
{"role": "target", "replaced_by": URI} after an INVITE with Replaces took our call's place); the ones above
never change meaning: after a transfer they describe the call we are left with.
"""

RESULTS = ("completed", "failed", "rejected", "timeout")
RTP_COUNTERS = ("sent", "received", "lost", "late", "auth_failures", "replays")
LEG_FIELDS = ("codec", "secure", "sas", "sas_type", "zrtp")  # what describes one dialog's media


class Summary:
    def __init__(self, encryption):
        self.result = "failed"
        self.reason = ""
        self.sip_status = 0
        self.registered = False
        self.codec = None
        self.encryption = encryption
        self.secure = False
        self.sas = None
        self.sas_type = None
        self.zrtp = None  # dict once ZRTP went secure
        self.rtp = dict.fromkeys(RTP_COUNTERS, 0)
        self.extra_rtp = {}
        self.alarms = []
        self.actions = []  # `--at` in-call actions and how each went (firmware.runtime.actions)
        self.transfer = None  # dict: how the call moved to another dialog (firmware.runtime.transfer)

    def new_leg(self):
        """The call goes on in a new dialog (a transfer, a Replaces): what described the media of the
        old one (codec, keys, SAS) no longer does; alarms and actions stay, they happened. Returns what
        described the old one, for resume_leg()."""
        old = {name: getattr(self, name) for name in LEG_FIELDS}
        self.codec = None
        self.secure = False
        self.sas = None
        self.sas_type = None
        self.zrtp = None
        return old

    def resume_leg(self, old):
        """The new dialog failed and the call goes on in the old one (a transfer that failed): `old`, from
        new_leg(), describes the media again."""
        for name in LEG_FIELDS:
            setattr(self, name, old[name])

    def finish(self, result, reason, sip_status=None):
        """Record how the call ended; the first conclusion wins (later ones are consequences)."""
        if result not in RESULTS:
            raise ValueError(result)
        if self.reason:
            return
        self.result = result
        self.reason = reason
        if sip_status is not None:
            self.sip_status = sip_status

    def to_json(self):
        rtp = dict(self.rtp)
        rtp.update(self.extra_rtp)
        out = {
            "result": self.result,
            "reason": self.reason,
            "sip_status": self.sip_status,
            "registered": self.registered,
            "codec": self.codec,
            "encryption": self.encryption,
            "secure": self.secure,
            "sas": self.sas,
            "sas_type": self.sas_type,
            "zrtp": self.zrtp,
            "rtp": rtp,
        }
        if self.alarms:
            out["alarms"] = list(self.alarms)
        if self.actions:
            out["actions"] = [dict(record) for record in self.actions]
        if self.transfer is not None:
            out["transfer"] = dict(self.transfer)
        return out

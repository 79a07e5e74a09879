"""The phone's menu (sans-I/O, MicroPython-clean): our ZID fingerprint, the call history (dial an entry
again) and resetting the trust in a peer. The menu only moves between its pages; what a key asks the
phone to do comes back as an action: (CLOSE, None), (DIAL, uri), (RESET_TRUST, peer_zid) or None."""

from firmware.phone.history import trusted_peers
from firmware.phone.states import KEY_BACK, KEY_HANGUP, KEY_MENU

MAIN = "main"
ZID = "zid"
HISTORY = "history"
RESET = "reset"
CONFIRM_RESET = "confirm-reset"

CLOSE = "close"
DIAL = "dial"
RESET_TRUST = "reset-trust"

_CLOSE_KEYS = (KEY_HANGUP, KEY_MENU)
_BACK_KEYS = ("*", KEY_BACK)
_MOVE = (("2", -1), ("8", 1))


class Menu:
    """The open page and the picked entry of the history or peer list."""

    __slots__ = ("page", "index")

    def __init__(self):
        self.page = MAIN
        self.index = 0

    def key(self, key, history):
        """Apply one key; `history` is the phone's call history. Returns an action or None."""
        if key in _CLOSE_KEYS:
            return (CLOSE, None)
        if key in _BACK_KEYS:
            return self._back()
        return _PAGE_KEYS[self.page](self, key, history)

    def _back(self):
        if self.page == MAIN:
            return (CLOSE, None)
        self.page = RESET if self.page == CONFIRM_RESET else MAIN
        return None

    def _on_main(self, key, history):
        page = {"1": ZID, "2": HISTORY, "3": RESET}.get(key)
        if page is not None:
            self.page = page
            self.index = 0
        return None

    def _on_zid(self, key, history):
        return None

    def _on_list(self, key, history):
        entries = history if self.page == HISTORY else trusted_peers(history)
        if not entries:
            return None
        for move_key, step in _MOVE:
            if key == move_key:
                self.index = (self.index + step) % len(entries)
                return None
        if key != "#":
            return None
        if self.page == RESET:
            self.page = CONFIRM_RESET
            return None
        remote = entries[self.index].get("remote")
        return (DIAL, remote) if remote else None

    def _on_confirm_reset(self, key, history):
        if key != "#":
            return None
        self.page = MAIN
        peers = trusted_peers(history)
        if self.index < len(peers):
            return (RESET_TRUST, peers[self.index][0])
        return None


_PAGE_KEYS = {
    MAIN: Menu._on_main,
    ZID: Menu._on_zid,
    HISTORY: Menu._on_list,
    RESET: Menu._on_list,
    CONFIRM_RESET: Menu._on_confirm_reset,
}

"""Evidence read from generic telemetry: tool results, tool names and what users say.

No standard covers human approval, escalation or a user's frustration, and real fleets do
not set this project's ``promote.*`` attributes. What they do record is the tool calls the
agent made (name, arguments, result) and the conversation. These pure readers turn those
into the signals the criteria weigh; ``promote.*`` attributes, where present, still win
(see ``shared.features``).

Each reader is deliberately conservative: a signal that fires on ordinary traffic would
push every run towards promotion, which is the failure this project exists to avoid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

Approval = Literal["requested", "granted", "denied"]

# A tool whose purpose is asking a person (or a policy engine) for permission.
APPROVAL_TOOL = re.compile(r"approv|permission|consent|authori[sz]|sign_?off", re.I)
# A tool that hands the conversation to people: escalation, not a side effect.
ESCALATION_TOOL = re.compile(
    r"escalat|hand_?off|handover"
    r"|(?:transfer|route|forward|connect|hand)\w*?"
    r"(?:human|person|people|operator|staff|specialist|supervisor|manager|representative|live)"
    r"|(?:human|live)_?(?:agent|support|review|help)",
    re.I,
)

_DENIED_WORDS = frozenset(
    {"denied", "deny", "rejected", "reject", "declined", "decline", "refused", "refuse", "no"}
)
_GRANTED_WORDS = frozenset({"approved", "approve", "granted", "accepted", "allowed", "yes", "ok"})
_APPROVAL_FLAGS = ("approved", "granted", "allowed", "authorized", "authorised", "accepted")
_DECISION_KEYS = ("status", "decision", "result", "outcome", "state", "answer")

_ERROR_KEYS = ("error", "errors", "error_message", "errorMessage", "exception", "fault")
_STATUS_KEYS = ("status", "status_code", "statusCode", "http_status", "code")
_ERROR_TEXT = re.compile(
    r"^\s*(?:error|exception|traceback|failed|failure|fatal)\b"
    r"|\b(?:http|status)(?:\s+code)?\W{0,3}[45]\d\d\b"
    r"|\b[45]\d\d\s+(?:bad request|unauthori[sz]ed|forbidden|not found|conflict"
    r"|unprocessable|too many requests|internal server error|bad gateway|service unavailable)",
    re.I,
)
_EMPTY_TEXT = re.compile(
    r"^\s*(?:no (?:results?|matches|documents|records|items|data)(?: found)?|nothing found"
    r"|0 results?|none)\W*$",
    re.I,
)
_COLLECTION_KEYS = ("results", "items", "data", "documents", "hits", "records", "matches")


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return None
    return None


def _status_is_error(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 400 <= value <= 599
    if isinstance(value, str) and value.strip().isdigit():
        return 400 <= int(value.strip()) <= 599
    return isinstance(value, str) and value.strip().lower() in {"error", "failed", "failure"}


def result_is_error(result: str | None) -> bool:
    """A tool result that reports a failure: an error field, an HTTP 4xx/5xx status, an
    explicit ``success: false``, or text that opens with "Error"."""
    if not result:
        return False
    doc = _parsed(result)
    if isinstance(doc, Mapping):
        if any(doc.get(k) not in (None, "", [], {}, False) for k in _ERROR_KEYS):
            return True
        if any(_status_is_error(doc.get(k)) for k in _STATUS_KEYS):
            return True
        return doc.get("success") is False or doc.get("ok") is False
    if doc is not None:
        return False
    return bool(_ERROR_TEXT.search(result[:300]))


def result_is_empty(result: str | None) -> bool:
    """A call that returned nothing to work with: an empty body or collection, or "no
    results". An absent result (not recorded) is not evidence of anything."""
    if result is None:
        return False
    stripped = result.strip()
    if stripped in ("", "[]", "{}", "null", '""'):
        return True
    doc = _parsed(stripped)
    if isinstance(doc, list):
        return not doc
    if isinstance(doc, Mapping):
        present = [k for k in _COLLECTION_KEYS if k in doc]
        return bool(present) and all(doc[k] in ([], {}, None) for k in present)
    return bool(_EMPTY_TEXT.match(stripped))


def is_approval_tool(name: str | None) -> bool:
    return bool(name and APPROVAL_TOOL.search(name))


def is_escalation_tool(name: str | None) -> bool:
    return bool(name and ESCALATION_TOOL.search(name))


def _decision_word(value: Any) -> Approval | None:
    if isinstance(value, bool):
        return "granted" if value else "denied"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _DENIED_WORDS:
            return "denied"
        if word in _GRANTED_WORDS:
            return "granted"
    return None


def approval_outcome(result: str | None, failed: bool) -> Approval:
    """What an approval tool's result says: ``{"approved": false}``, a status of
    "denied"/"rejected", or a failed call are denials; an explicit yes is a grant; anything
    else means the approval was asked for and the answer is not in the trace."""
    if failed:
        return "denied"
    doc = _parsed(result)
    if isinstance(doc, Mapping):
        for key in _APPROVAL_FLAGS:
            if key in doc and (answer := _decision_word(doc[key])) is not None:
                return answer
        for key in _DECISION_KEYS:
            if key in doc and (answer := _decision_word(doc[key])) is not None:
                return answer
        return "requested"
    text = (result or "").strip().lower()
    if re.search(r"\b(?:denied|rejected|declined|refused|not approved)\b", text):
        return "denied"
    if re.search(r"\b(?:approved|granted)\b", text):
        return "granted"
    return "requested"


# --- what users say ---------------------------------------------------------------------

# A user putting the agent right: the run went somewhere they did not ask for.
_CORRECTION = re.compile(
    r"\b(?:that'?s|that is|this is|it'?s|it is) (?:not|wrong|incorrect)\b"
    r"|\bnot what i (?:asked|wanted|said|meant|need)"
    r"|\bi (?:already|just) (?:told|said|gave|mentioned|asked|provided)"
    r"|\bi (?:said|meant|asked for|didn'?t (?:ask|say|want))\b"
    r"|\byou (?:misunderstood|got it wrong|made a mistake|didn'?t (?:listen|read|understand))"
    r"|\b(?:wrong|incorrect) (?:item|order|address|answer|one|account|amount|product|date)"
    r"|\bthat'?s wrong\b",
    re.I,
)
# A user losing patience, or asking to leave the agent for a person.
_FRUSTRATION = re.compile(
    r"\bfrustrat|\bannoy|\bridiculous\b|\buseless\b|\bterrible\b|\bunacceptable\b"
    r"|\bwaste of (?:my )?time\b|\bstill (?:not|doesn'?t|isn'?t|haven'?t|hasn'?t)\b"
    r"|\bhow many times\b|\bfor the (?:second|third|last) time\b"
    r"|\b(?:speak|talk|transfer me|connect me) (?:to|with) (?:a |an |your )?"
    r"(?:human|person|real person|manager|supervisor|representative|agent)\b"
    r"|[!?]{2,}",
    re.I,
)


def is_correction(text: str) -> bool:
    return bool(_CORRECTION.search(text))


def is_frustrated(text: str) -> bool:
    return bool(_FRUSTRATION.search(text))

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

import functools
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
_ERROR_OR_STATUS_KEYS = frozenset(_ERROR_KEYS + _STATUS_KEYS)
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
_EMPTY_BODIES = frozenset({"", "[]", "{}", "null", '""'})


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
    return _reports_error(result, _parsed(result))


def _reports_error(result: str, doc: Any) -> bool:
    if isinstance(doc, Mapping):
        # An absent key reads as None, which neither test counts: only the keys present
        # are looked at (most results have none of the eleven).
        present = doc.keys() & _ERROR_OR_STATUS_KEYS
        if present:
            errors = (doc[k] for k in _ERROR_KEYS if k in present)
            if any(value not in (None, "", [], {}, False) for value in errors):
                return True
            if any(_status_is_error(doc[k]) for k in _STATUS_KEYS if k in present):
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
    if stripped in _EMPTY_BODIES:
        return True
    return _reports_nothing(stripped, _parsed(stripped))


def _reports_nothing(stripped: str, doc: Any) -> bool:
    if isinstance(doc, list):
        return not doc
    if isinstance(doc, Mapping):
        present = [k for k in _COLLECTION_KEYS if k in doc]
        return bool(present) and all(doc[k] in ([], {}, None) for k in present)
    return bool(_EMPTY_TEXT.match(stripped))


def result_verdicts(result: str | None) -> tuple[bool, bool]:
    """``(result_is_error(result), result_is_empty(result))`` with the result parsed once:
    the features ask both of every tool call, and the parse is most of either's cost."""
    if result is None:
        return False, False
    stripped = result.strip()
    doc = _parsed(stripped)  # what each of the two would parse: the stripped result
    error = bool(result) and _reports_error(result, doc)
    return error, stripped in _EMPTY_BODIES or _reports_nothing(stripped, doc)


# Tool names repeat across spans and traces (a fleet has tens of tools), so what the two
# patterns say of a name is memoised; a name longer than a tool's is read, not kept.
_MEMO_NAME_CHARS = 256


@functools.lru_cache(maxsize=4096)
def _names_approval(name: str) -> bool:
    return APPROVAL_TOOL.search(name) is not None


@functools.lru_cache(maxsize=4096)
def _names_escalation(name: str) -> bool:
    return ESCALATION_TOOL.search(name) is not None


def is_approval_tool(name: str | None) -> bool:
    if not name:
        return False
    if len(name) > _MEMO_NAME_CHARS:
        return APPROVAL_TOOL.search(name) is not None
    return _names_approval(name)


def is_escalation_tool(name: str | None) -> bool:
    if not name:
        return False
    if len(name) > _MEMO_NAME_CHARS:
        return ESCALATION_TOOL.search(name) is not None
    return _names_escalation(name)


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
# The word boundary is written once before the words: with each alternative opening on
# its own \b (and the last on none, so re cannot factor it), every position tried all
# of them; this way most positions fail at the boundary. Same matches, ~3x faster.
_FRUSTRATION = re.compile(
    r"\b(?:frustrat|annoy|ridiculous\b|useless\b|terrible\b|unacceptable\b"
    r"|waste of (?:my )?time\b|still (?:not|doesn'?t|isn'?t|haven'?t|hasn'?t)\b"
    r"|how many times\b|for the (?:second|third|last) time\b"
    r"|(?:speak|talk|transfer me|connect me) (?:to|with) (?:a |an |your )?"
    r"(?:human|person|real person|manager|supervisor|representative|agent)\b)"
    r"|[!?]{2,}",
    re.I,
)


def is_correction(text: str) -> bool:
    return bool(_CORRECTION.search(text))


def is_frustrated(text: str) -> bool:
    return bool(_FRUSTRATION.search(text))

"""The write-time second pass: an independent check over a fixture before it is stored.

Independent means a different engine for personal data: Presidio's pattern recognizers (no NLP
engine, so no spaCy model and no network), plus the credential detectors of the first pass,
since Presidio has no recognizers for keys or tokens. Any hit blocks the fixture; the reasons
name the entity and the engine, never the value.

Choices, tuned so that clean redacted fixtures pass:
- Entities: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS — what
  the first pass promises to remove. Presidio's DATE_TIME, URL, UUID, US_BANK_NUMBER,
  US_DRIVER_LICENSE, US_PASSPORT, NHS and medical-licence recognizers match timestamps, ids
  and hex fragments in every trace and would block everything.
- Score threshold 0.4: keeps validated hits (email with a known TLD, Luhn cards, mod-97 IBANs,
  all 1.0), IPs (0.6), formatted SSNs (0.5) and libphonenumber-valid phones (0.4); drops the
  "very weak" SSN patterns (0.05) that fire on any nine digits.
- Phone regions US and GB (Presidio's default list adds IN, BR, ...: ten-digit ids then read as
  valid Indian mobiles); "+"-prefixed numbers of any country are still found. Its matcher
  is not run on a text where no run of digits is long enough to be a valid number
  (``phone_reach``): it cost most of the check on scores, versions and ids.
- IP addresses the first pass deliberately keeps (loopback, "any", reserved, versions written
  as dotted quads) are not leaks.
- The email recognizer validates domains with tldextract, which downloads the public-suffix
  list on first use: here it gets an extractor with no URLs and no disk cache, so it reads the
  snapshot bundled with tldextract.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from services.redaction.detectors import CREDENTIAL_DETECTORS, ip_kept
from services.redaction.phone_reach import PhoneReach
from services.redaction.scanner import Scanner, ScanSession, resolve

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
SCORE_THRESHOLD = 0.4
PHONE_REGIONS = ("US", "GB")
VERDICT_CACHE_SIZE = 32_768

_SECRET_SCANNER = Scanner(CREDENTIAL_DETECTORS)
_analyzer: Any = None
_analyzer_lock = threading.Lock()


def find_leaks(texts: Iterable[str]) -> list[str]:
    """Why these texts must not be stored, one reason per kind of hit; empty when clean."""
    reasons: dict[str, None] = {}
    session = _SECRET_SCANNER.session()  # one scratch per check, as the first pass does
    for text in texts:
        if text:
            reasons.update(dict.fromkeys(_VERDICTS.leaks_in(text, session)))
    return list(reasons)


class VerdictCache:
    """Promotions of one pattern repeat most of their strings (tool names, templated
    answers, the agent's wording): profiling found 80 % of the strings analysed already
    seen. The verdict on a string never changes, so it is kept, by the string's digest
    (a bounded memory whatever the strings' size), least recently used out first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._verdicts: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()

    def leaks_in(self, text: str, session: ScanSession) -> tuple[str, ...]:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        found = self._verdicts.get(key)
        if found is not None:
            self._verdicts.move_to_end(key)
            return found
        found = _analyse(text, session)
        self._verdicts[key] = found
        if len(self._verdicts) > self.size:
            self._verdicts.popitem(last=False)
        return found

    def clear(self) -> None:
        self._verdicts.clear()


def _analyse(text: str, session: ScanSession) -> tuple[str, ...]:
    reasons: dict[str, None] = {}
    for result in _get_analyzer().analyze(
        text=text, language="en", entities=list(ENTITIES), score_threshold=SCORE_THRESHOLD
    ):
        if result.entity_type == "IP_ADDRESS" and ip_kept(text, result.start, result.end):
            continue
        reasons[f"{result.entity_type} found by presidio"] = None
    # Resolved like the first pass, so one key is reported by the detector that owns it
    # (an AWS key next to "key" is not also a high-entropy secret).
    for index, _finding in resolve(_SECRET_SCANNER.findings(text, session)):
        reasons[f"{_SECRET_SCANNER.detectors[index].name} found by secret scan"] = None
    return tuple(reasons)


_VERDICTS = VerdictCache(VERDICT_CACHE_SIZE)


def _get_analyzer() -> Any:
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                _analyzer = _build_analyzer()
    return _analyzer


def _build_analyzer(phone_reach: bool = True) -> Any:
    """Without ``phone_reach``, Presidio's phone recognizer runs on every text, as it did
    before: the benchmark times the two."""
    # Imported here: Presidio pulls in spaCy, which takes seconds to import, and only the
    # fixture writer needs it.
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    offline_suffixes = tldextract.TLDExtract(
        cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True
    )

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline_suffixes(pattern_text).fqdn)

    reach = PhoneReach(PHONE_REGIONS)

    class ReachablePhoneRecognizer(PhoneRecognizer):
        """Presidio's, not run on a text where no number could be found (see phone_reach)."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> Any:
            if not reach.may_hold_number(text):
                return []
            return super().analyze(text, entities, nlp_artifacts)

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        OfflineEmailRecognizer(),
        (ReachablePhoneRecognizer if phone_reach else PhoneRecognizer)(
            supported_regions=PHONE_REGIONS
        ),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    nlp_engine.load()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])

"""Names typed in lower case, after an identity cue, judged by what ordinarily follows it."""

from __future__ import annotations

import re
from collections.abc import Iterator

from services.redaction.base import Detector, Finding
from services.redaction.prose_words import COMMON_EN as _COMMON_EN
from services.redaction.prose_words import FREQUENT_EN as _FREQUENT_EN
from services.redaction.prose_words import FUNCTION_EN as _FUNCTION_EN
from services.redaction.prose_words import NAME_PARTICLES as _LOWER_PARTICLES
from services.redaction.prose_words import NOT_NAMES as _NOT_NAMES
from services.redaction.prose_words import RIGHT_SINGLE_QUOTE as _RSQ
from services.redaction.prose_words import split_words as _words
from services.redaction.prose_words import utf8_prefilter as _utf8

# Names typed in lower case ("hi, i'm kenn friis-koch and ..."): only after an identity cue,
# judged by what ordinarily follows that cue in English. Strong cues ("my name is", "call me",
# "i'm" and "i am", "this is" at the start of an utterance, a title, a sign-off on its own
# line) take the next one to three words as a name unless they are function words (wordfreq's
# 400 most frequent English words, shipped inside the package, already a dependency), words
# that ordinarily follow those cues (_FOLLOWERS: the states, feelings, activities and fillers
# of "i'm sorry", "i'm looking", "this is urgent"), or common words shaped like participles,
# adverbs and adjectives ("-ing", "-ed", "-ly", "-ous", ...). A single common word is a name
# only at the end of the clause ("i'm mark, ...", "i'm ruby and ..."): "this is serious stuff"
# is not. Weak cues ("it's", "here's", "soy", "this is" in the middle of a sentence) keep the
# stricter rule: the first word must not be one of the 20,000 most frequent English words,
# or a second, rare word must follow.
_LOWER_STRONG = (
    r"my name is|my name's|name is|name's|my name:|name:|call me|i'm called|i" + _RSQ
    + r"m called|i am called|you're speaking to|you are speaking to|you're speaking with"
    r"|you are speaking with|je m'appelle|me llamo|mi chiamo|ich heiße|meu nome é|mi nombre es"
    r"|mein name ist|mijn naam is|jag heter|nazywam się"
)  # fmt: skip
_LOWER_INTRO = r"i'm|i" + _RSQ + r"m|i am|this is"
# Not "its" nor "it is": in prose they precede anything ("its hardness", "it is endemic").
_LOWER_WEAK = r"im|it's|it" + _RSQ + r"s|ich bin|je suis|sono|soy|here is|here's"
_LOWER_WORD = r"[a-zß-öø-ÿā-ž][a-zß-öø-ÿā-ž'" + _RSQ + r"-]*"
_LOWER_TITLE = r"(?:(mr|mrs|ms|miss|mx|dr|prof|sir)\.?[ \t]+)?"
_LOWER_CUES = _LOWER_STRONG + r"|" + _LOWER_INTRO + r"|" + _LOWER_WEAK
_LOWER_NAME = re.compile(
    r"(?i:\b(" + _LOWER_CUES + r"))[ \t]*[,:]?"
    r"[ \t]+" + _LOWER_TITLE + r"(" + _LOWER_WORD + r"(?:[ \t]+" + _LOWER_WORD + r"){0,4})\b"
)  # fmt: skip
# A sign-off, then the name alone on its line or at the end of the text ("cheers,\nmark").
_SIGN_OFF_CUES = (
    r"regards|best regards|kind regards|warm regards|best wishes|sincerely|cheers"
    r"|thanks|thank you|many thanks|thanks again|best|yours|yours truly|take care"
)
_LOWER_SIGN_OFF = re.compile(
    r"(?i:\b(" + _SIGN_OFF_CUES + r"))[ \t]*[,.!-]?"
    r"[ \t]*(?:\n[ \t]*|[ \t]+)" + _LOWER_TITLE + r"(" + _LOWER_WORD + r"(?:[ \t]+"
    + _LOWER_WORD + r"){0,3})[ \t]*[.!]?[ \t]*(?=\n|$)"
)  # fmt: skip
# A greeting, then the name and "here" or "speaking": "hello, amelia okafor here".
_GREETING_CUES = r"hi|hello|hey|hiya|good morning|good afternoon|good evening|greetings|morning"
_LOWER_GREETING_HERE = re.compile(
    r"(?i:\b(" + _GREETING_CUES + r"))"
    r"[ \t]*[,!.-]?[ \t]+(" + _LOWER_WORD + r"(?:[ \t]+" + _LOWER_WORD + r"){0,2})[ \t]+"
    r"(?:here|speaking)\b"
)  # fmt: skip


_PLAIN = re.compile(r"[^\\.^$*+?{}\[\]|()]{2}")


def _cue_starts(cues: str) -> re.Pattern[str]:
    """Where a match of a pattern opening with ``(?i:\b(cues))`` can start: a word start
    whose first two characters are, caselessly, the first and the second of some cue. A
    necessary condition (a case-insensitive class matches every character its members match
    as case-insensitive literals), found by one cheap scan: Python's engine otherwise tries
    each of the thirty-odd cues at every character."""
    words = cues.split("|")
    # The cues open with two plain characters (no escape, no class): they are literals.
    assert all(_PLAIN.fullmatch(w[:2]) for w in words)
    first = "".join(sorted({re.escape(w[0]) for w in words}))
    second = "".join(sorted({re.escape(w[1]) for w in words}))
    return re.compile(r"(?i:\b[" + first + r"](?=[" + second + r"]))")


def _matches(
    pattern: re.Pattern[str], starts: re.Pattern[str], text: str
) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` when every match of ``pattern`` is non-empty and begins
    where ``starts`` matches: only those positions are tried, and the first of them (from
    the end of the previous match) where ``pattern`` matches is where finditer's next match
    begins, the same match."""
    pos = 0
    for start in starts.finditer(text):
        at = start.start()
        if at >= pos:
            m = pattern.match(text, at)
            if m is not None:
                yield m
                pos = m.end()


_LOWER_NAME_STARTS = _cue_starts(_LOWER_CUES)
_SIGN_OFF_STARTS = _cue_starts(_SIGN_OFF_CUES)
_GREETING_STARTS = _cue_starts(_GREETING_CUES)


_STRONG_CUES = frozenset(_LOWER_STRONG.replace(_RSQ, "'").split("|"))
_INTRO_CUES = frozenset({"i'm", "i am", "this is", "im", "it's"})
# Cues that introduce the speaker only at the start of an utterance ("hello this is ...",
# "hi im ...", "it's mark baker"), and those that need two name words ("it's fine").
_UTTERANCE_CUES = frozenset({"this is", "im", "it's"})
_TWO_WORD_CUES = frozenset({"it's"})
# Endings of words that are not names: always ("-ous", "-able", ...), or when what is left is
# itself an English word ("look-ing", "tire-d", "real-ly", "act-ive", "differ-ent"), so that
# "emily", "fred", "clive" and "vincent" stay names.
_ENDINGS_ALWAYS = ("ous", "able", "ible", "less", "ness", "ful", "ical")
_ENDINGS_DERIVED = ("ing", "ed", "ly", "ily", "ive", "ish", "ent", "ant", "ize")
# What ordinarily follows "i'm", "i am", "this is" and a sign-off in English and is not among
# the 400 most frequent words: states, feelings, situations, roles, fillers and verdicts.
_FOLLOWERS = frozenset(
    _words(
        """
        sorry sure unsure afraid glad happy unhappy fine ok okay alright good great well
        better worse bad ill sick unwell tired exhausted bored hungry thirsty cold hot warm
        ready done finished set able unable willing keen eager open aware unaware familiar
        curious certain positive convinced confident content satisfied pleased grateful
        thankful delighted thrilled excited nervous anxious scared afraid terrified worried
        concerned upset sad angry mad furious livid annoyed irritated frustrated confused
        puzzled baffled shocked surprised amazed impressed disappointed desperate lucky
        unlucky serious kidding joking stuck lost late early busy free available away back
        home here there out over online offline abroad overseas outside inside nearby close
        far downstairs upstairs new old young alone married single divorced widowed pregnant
        allergic vegan vegetarian diabetic disabled deaf blind retired unemployed broke rich
        poor safe alive dead hurt injured responsible eligible entitled due owed wrong right
        correct mistaken gonna tryna kinda sorta like literally seriously honestly genuinely
        super extremely incredibly fairly somewhat slightly quite rather pretty totally
        absolutely definitely probably actually basically currently still already almost
        nearly barely hardly again once twice yet also just really very so too not never
        always now then soon later today tonight tomorrow urgent ridiculous unacceptable
        absurd insane crazy terrible awful horrible outrageous annoying frustrating confusing
        disappointing important critical perfect helpful useless strange weird odd unusual
        normal expected unexpected true false fake real fraud scam spam nonsense madness
        hell regarding re concerning about for from with without in on at by to into of off
        up down what why how where when who which whose it this that these those everything
        nothing something anything all both each either neither another one two three first
        second third last next final part kind sort type way exactly precisely only even
        student teacher doctor nurse engineer developer designer lawyer parent mother father
        mom mum dad wife husband son daughter owner tenant landlord buyer seller vendor
        customer client member guest user admin manager premium gold silver platinum bronze
        vip regular frequent loyal existing returning first-time long-time bye goodbye later
        cheers thanks thank regards best wishes love xoxo xx asap fyi btw lol haha hmm um uh
        yes no yeah yep nope please pls plz dying lying mate buddy guys heaps loads lots
        tons dude man bro honest cool anyone someone somebody anybody nobody everyone
        everybody relevant irrelevant valid invalid broken overdue
        pending expired inaccurate incomplete complete insufficient
        """
    )
)


_MAX_NAME_WORDS = 3
# "this is" introduces the speaker at the start of an utterance: the text's start, a new
# sentence or line, or a greeting ("hello this is ...", "hi there, this is ...").
_UTTERANCE_START = re.compile(
    r"(?:^|[.!?\n:;]|(?i:\b(?:hi|hello|hey|hiya|yes|yeah|yep|ok|okay|morning|afternoon"
    r"|evening|greetings|there|all|folks|team)))[\s,.!-]*$"
)


def _shaped_not_name(word: str) -> bool:
    """A word shaped like a participle, an adverb or an adjective of English."""
    if any(word.endswith(e) and len(word) >= len(e) + 3 for e in _ENDINGS_ALWAYS):
        return True
    for e in _ENDINGS_DERIVED:
        if not word.endswith(e) or len(word) < len(e) + 3:
            continue
        stem = word[: -len(e)]
        if stem in _COMMON_EN:  # "look-ing", "differ-ent", "act-ive"
            return True
        if e in ("ent", "ant"):
            continue
        variants = {stem + "e"}  # "tire-d", "hav-ing"
        if e == "ily" or stem.endswith("i"):
            variants.add(stem[:-1] + "y" if stem.endswith("i") else stem + "y")  # "worri-ed"
        if stem[-1] == stem[-2]:
            variants.add(stem[:-1])  # "stopp-ing"
        if any(v in _FREQUENT_EN for v in variants):
            return True
    return False


def _not_a_name_word(word: str) -> bool:
    w = word.replace(_RSQ, "'")
    return w in _FUNCTION_EN or w in _NOT_NAMES or w in _FOLLOWERS or _shaped_not_name(w)


_CLAUSE_END = re.compile(r"[ \t]*(?:$|[,.;:!?)\n]|(?:and|&|-)(?:[ \t]|$))")


def _clause_ends(text: str, end: int) -> bool:
    """Whether a clause ends right after ``end`` (punctuation, a line end, "and ...")."""
    return _CLAUSE_END.match(text, end) is not None


_MONTH_NAMES = frozenset({"april", "june", "july", "august"})  # "this is june turner"


def _name_words(words: list[str]) -> list[str]:
    kept: list[str] = []
    for i, w in enumerate(words):
        if w in _LOWER_PARTICLES and kept:
            kept.append(w)
            continue
        if sum(k not in _LOWER_PARTICLES for k in kept) >= _MAX_NAME_WORDS:
            break
        month_first = (
            i == 0 and w in _MONTH_NAMES and len(words) > 1 and not _not_a_name_word(words[1])
        )
        if _not_a_name_word(w) and not month_first:
            break
        kept.append(w)
    while kept and kept[-1] in _LOWER_PARTICLES:
        kept.pop()
    return kept


def _lower_finding(text: str, start: int, words_text: str, kept: list[str]) -> Finding:
    end = start + len(" ".join(kept))
    if text[start:end].split() != kept:  # several blanks between the words
        end = start + len(words_text.split(kept[-1], 1)[0]) + len(kept[-1])
    return Finding(start, end, "PERSON", " ".join(kept))


def _lower_names(text: str) -> Iterator[Finding]:
    for m in _matches(_LOWER_NAME, _LOWER_NAME_STARTS, text):
        cue = " ".join(m.group(1).casefold().replace(_RSQ, "'").split())
        if cue == "im" and m.group(1) != "im":  # typed "im" only, not German "Im ersten ..."
            continue
        words_text = m.group(3)
        words = words_text.split()
        titled = m.group(2) is not None
        if titled or cue in _STRONG_CUES:
            # A title or "my name is" says a name follows: only function words are not.
            kept: list[str] = []
            for w in words:
                if (w in _FUNCTION_EN or w in _NOT_NAMES or w in _FOLLOWERS) and (
                    not kept or w not in _LOWER_PARTICLES
                ):
                    break
                if sum(k not in _LOWER_PARTICLES for k in kept) >= _MAX_NAME_WORDS:
                    break
                kept.append(w)
            while kept and kept[-1] in _LOWER_PARTICLES:
                kept.pop()
            if kept:
                yield _lower_finding(text, m.start(3), words_text, kept)
            continue
        intro = cue in _INTRO_CUES and (
            cue not in _UTTERANCE_CUES
            or _UTTERANCE_START.search(text, max(0, m.start() - 40), m.start()) is not None
        )
        if intro:
            kept = _name_words(words)
            if not kept or (cue in _TWO_WORD_CUES and len(kept) < 2):
                continue
            end = m.start(3) + len(" ".join(kept))
            single_common = len(kept) == 1 and kept[0] in _COMMON_EN
            if single_common and not _clause_ends(text, end):
                continue
            yield _lower_finding(text, m.start(3), words_text, kept)
            continue
        if cue == "im":  # mid-sentence it is German: "im nächsten monat"
            continue
        # Weak cues: a rare first word, or a common one with a rare second one.
        first = words[0]
        if _not_a_name_word(first):
            continue
        kept = [first]
        for w in words[1:]:
            if w in _LOWER_PARTICLES:
                kept.append(w)
                continue
            if _not_a_name_word(w) or len(kept) >= _MAX_NAME_WORDS:
                break
            kept.append(w)
        while kept and kept[-1] in _LOWER_PARTICLES:
            kept.pop()
        if first in _COMMON_EN and (len(kept) < 2 or kept[1] in _COMMON_EN):
            continue
        yield _lower_finding(text, m.start(3), words_text, kept)
    for m in _matches(_LOWER_GREETING_HERE, _GREETING_STARTS, text):
        words_text = m.group(2)
        kept = _name_words(words_text.split())
        if kept and len(kept) == len(words_text.split()):
            yield _lower_finding(text, m.start(2), words_text, kept)
    for m in _matches(_LOWER_SIGN_OFF, _SIGN_OFF_STARTS, text):
        words_text = m.group(3)
        kept = _name_words(words_text.split())
        if kept and len(kept) == len(words_text.split()):
            yield _lower_finding(text, m.start(3), words_text, kept)


LOWERCASE_PERSON_DETECTOR = Detector(
    "person_in_prose_lower_case",
    (
        _utf8(
            r"(?:"
            + _LOWER_STRONG
            + r"|i'm|i\xe2\x80\x99m|i am|this is|"
            + _LOWER_WEAK
            + r")[ \t]*[,:]?[ \t]+[a-z\xc3-\xc5]"
        ),
        r"(?:regards|wishes|sincerely|cheers|thank|best|yours|care)[ \t]*[,.!-]?[ \t]*\n?"
        r"[ \t]*[a-z\xc3-\xc5]",
        r"(?:hi|hello|hey|hiya|morning|afternoon|evening|greetings)[^\n]{1,60}(?:here|speaking)",
    ),
    _lower_names,
    caseless=True,
)

"""Names and street addresses in free text, with no keyed field to give them away.

Names are read where the words around them say a person is named, the way people and tools
write it: after "my name is", "this is", "I am", "speaking", "customer", "user", "patient",
"passenger", "cardholder"; after a title (Mr, Mrs, Ms, Dr, Prof, Herr, Frau, Mme, Sr, Sra,
Sig ...); after a salutation ("Dear", "Hi", "Hello") and in a sign-off ("Regards,", "Thanks,",
"Best,", "Cheers," and the name on the next line). What follows must be one to four
capitalised words (particles such as "van", "de", "O'" allowed) that are not common words of
the domain ("Customer Service", "Hi there", "this is Order ..."); that list is the only
vocabulary here, so the check is cheap and predictable.

Addresses are read by their shape per country family: a house number and a street type
(English: "129 Baker Street", "58683 Mitchell Parks Suite 907", "Flat 6, 129 ..."), a street
type and a number (German, Dutch, Scandinavian compounds: "Lindenstraße 12", "Kimbaan 3",
"Kyrkvägen 7"; Romance: "Calle Mayor 5", "Via Roma, 12", "Rua das Flores, 32", "85, rue de
Lelièvre"; Polish "ul. Poziomkowa 65/70"), and postcodes in their national formats (UK, CA, NL,
PL, BR, JP, US ZIP after a state, five-digit codes before a town name).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import re2

from services.redaction import street_words
from services.redaction.base import Detector, Finding

# --- names ------------------------------------------------------------------------------

_RSQ = "\u2019"  # right single quotation mark, as in O\u2019Brien
_DASHES = "\u2013\u2014"
_UPPER = "A-ZÀ-ÖØ-ÞĀ-Ž"
_LOWER = "a-zß-öø-ÿā-ž"
_NAME_WORD = (
    r"(?:(?:O'|D'|Mc|Mac)?[" + _UPPER + r"][" + _LOWER + r"]+(?:[-'][" + _UPPER + r"]?["
    + _LOWER + r"]+)?|[" + _UPPER + r"]\.)"
)  # fmt: skip
_PARTICLE = r"(?:van|von|der|den|de|la|le|da|del|di|du|dos|das|bin|al|y|ten|ter)"
_NAME = _NAME_WORD + r"(?:[ \t](?:" + _PARTICLE + r"[ \t])?" + _NAME_WORD + r"){0,3}"

_INTRO = (
    r"my name is|my name's|name is|this is|i am|i'm|im|it's|it is|speaking with|you're"
    r" speaking to|you are speaking to|call me|known as|on behalf of|customer|client|user"
    r"|patient|passenger|cardholder|card holder|account holder|guest|member|recipient"
    r"|applicant|employee|contact|traveller|traveler|signed|sincerely|regards|kind regards"
    r"|best regards|best wishes|many thanks|thanks|thank you|cheers|dear|hi|hello|hey"
    r"|greetings|good morning|good afternoon|good evening|mr|mrs|ms|miss|mx|dr|prof|sir"
    r"|dame|lady|lord|herr|frau|mme|mlle|monsieur|madame|señor|señora|sr|sra|srta|sig"
    r"|sig\.ra|signor|signora|dott|ing|mnr|mevr|pan|pani|je m'appelle|me llamo|mi chiamo"
    r"|ich heiße|ich bin|name ist|je suis|soy|sono|meu nome é|mi nombre es"
)
_NAME_IN_PROSE = re2.compile(
    r"(?i:\b(?:" + _INTRO + r"))\b\.?,?(?:[ \t]+|[ \t]*\n[ \t]*)(?:[-" + _DASHES + r"][ \t]*)?"
    r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Herr|Frau|Mme|Mlle|Sr|Sra|Sig)\.?[ \t]+)?"
    r"(" + _NAME + r")"
)


def _words(text: str) -> list[str]:
    return text.split()


# Capitalised words that follow those cues and are not anyone's name.
_NOT_NAMES = frozenset(
    _words(
        """
        a an the this that these those it its i me my mine we our you your he she they them
        their there here all everyone everybody team support service services customer
        customers client user users guest member members patient agent assistant bot system
        admin administrator manager sir madam ma'am folks friend friends again again, not no
        yes ok okay sorry please thanks thank welcome hello hi hey dear good great sure just
        also still only very so now today tomorrow yesterday order orders item items product
        products account accounts payment refund return exchange delivery shipping request
        ticket case issue error failed failure success new old first last next previous
        regarding re fwd fw subject note id number email phone address name api tool function
        json http https null none true false monday tuesday wednesday thursday friday saturday
        sunday january february march april may june july august september october november
        december morning afternoon evening night is was are be been being has have had do does
        did can could will would should shall may might must on in at of for to from with by
        about as if and or but what which who whom how when where why unable able going trying
        looking calling writing reaching following interested happy glad afraid checking
        here's let's i'll i'd i've we're we'll
        """
    )
)

_TITLE_CUES = frozenset(
    _words(
        """
        mr mrs ms miss mx dr prof sir dame lady lord herr frau mme mlle monsieur madame señor
        señora sr sra srta sig signor signora dott ing mnr mevr pan pani
        """
    )
)


def _name_parts_ok(name: str) -> bool:
    words = [w for w in name.split() if len(w) > 1 or w.isalpha()]
    if not words:
        return False
    return words[0].casefold().rstrip(".,") not in _NOT_NAMES and not all(
        w.casefold().rstrip(".,") in _NOT_NAMES for w in words
    )


def person_names(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, name) of each name the words around it announce."""
    for m in _NAME_IN_PROSE.finditer(text):
        name = m.group(1)
        start = m.start(1)
        # Trailing words that are not names ("Jane Doe Order") are cut off.
        words = name.split()
        while words and words[-1].casefold().rstrip(".,") in _NOT_NAMES:
            words.pop()
        if not words:
            continue
        name = " ".join(words) if len(words) < len(name.split()) else name
        if name.endswith(".") and not re.fullmatch(r".*\b[A-Z]\.", name):
            name = name[:-1]
        if not _name_parts_ok(name):
            continue
        yield start, start + len(name), name


def _people(text: str) -> Iterator[Finding]:
    for start, end, name in person_names(text):
        yield Finding(start, end, "PERSON", " ".join(name.split()).casefold())


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
_LOWER_NAME = re.compile(
    r"(?i:\b(" + _LOWER_STRONG + r"|" + _LOWER_INTRO + r"|" + _LOWER_WEAK + r"))[ \t]*[,:]?"
    r"[ \t]+" + _LOWER_TITLE + r"(" + _LOWER_WORD + r"(?:[ \t]+" + _LOWER_WORD + r"){0,4})\b"
)  # fmt: skip
# A sign-off, then the name alone on its line or at the end of the text ("cheers,\nmark").
_LOWER_SIGN_OFF = re.compile(
    r"(?i:\b(regards|best regards|kind regards|warm regards|best wishes|sincerely|cheers"
    r"|thanks|thank you|many thanks|thanks again|best|yours|yours truly|take care))[ \t]*[,.!-]?"
    r"[ \t]*(?:\n[ \t]*|[ \t]+)" + _LOWER_TITLE + r"(" + _LOWER_WORD + r"(?:[ \t]+"
    + _LOWER_WORD + r"){0,3})[ \t]*[.!]?[ \t]*(?=\n|$)"
)  # fmt: skip
# A greeting, then the name and "here" or "speaking": "hello, amelia okafor here".
_LOWER_GREETING_HERE = re.compile(
    r"(?i:\b(hi|hello|hey|hiya|good morning|good afternoon|good evening|greetings|morning))"
    r"[ \t]*[,!.-]?[ \t]+(" + _LOWER_WORD + r"(?:[ \t]+" + _LOWER_WORD + r"){0,2})[ \t]+"
    r"(?:here|speaking)\b"
)  # fmt: skip
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


def _word_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    from wordfreq import top_n_list

    ranked = top_n_list("en", 20000)
    return frozenset(ranked), frozenset(ranked[:8000]), frozenset(ranked[:400])


_COMMON_EN, _FREQUENT_EN, _FUNCTION_EN = _word_lists()


_LOWER_PARTICLES = frozenset(_PARTICLE.strip("(?:)").split("|"))
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
    for m in _LOWER_NAME.finditer(text):
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
    for m in _LOWER_GREETING_HERE.finditer(text):
        words_text = m.group(2)
        kept = _name_words(words_text.split())
        if kept and len(kept) == len(words_text.split()):
            yield _lower_finding(text, m.start(2), words_text, kept)
    for m in _LOWER_SIGN_OFF.finditer(text):
        words_text = m.group(3)
        kept = _name_words(words_text.split())
        if kept and len(kept) == len(words_text.split()):
            yield _lower_finding(text, m.start(3), words_text, kept)


# The cues after which a name is someone's own, so that its other mentions in the trace are
# the same person's (the logic seeds them): introductions, the people a support trace is
# about, titles, salutations and sign-offs; not "known as", "member", "guest", "contact",
# "user", which in documents precede products and titles ("known as Xbox Game Studios").
_SEEDING_CUE = re.compile(
    r"(?i:\b(?:my name is|my name's|name is|this is|i am|i'm|im|it's|it is|speaking with|"
    r"speaking to|call me|on behalf of|customer|client|patient|passenger|cardholder"
    r"|card holder|account holder|applicant|traveller|traveler|recipient|signed|sincerely"
    r"|regards|dear|hi|hello|hey|greetings|thanks|thank you|many thanks|cheers|mr|mrs|ms"
    r"|miss|mx|dr|prof|herr|frau|mme|mlle|monsieur|madame|señor|señora|sr|sra|srta|sig"
    r"|signor|signora|dott|mnr|mevr|pan|pani|je m'appelle|me llamo|mi chiamo|ich heiße"
    r"|ich bin|name ist|je suis|soy|sono|meu nome é|mi nombre es))\b\.?,?[ \t]*\n?[ \t]*"
    r"(?:[-\u2013\u2014][ \t]*)?(?:(?i:mr|mrs|ms|miss|mx|dr|prof|herr|frau|mme|sr|sra|sig)"
    r"\.?[ \t]+)?$"
)


def seeds_other_mentions(text: str, start: int) -> bool:
    """Whether the name found at ``start`` came after a cue that says it is a person's own."""
    return _SEEDING_CUE.search(text, max(0, start - 40), start) is not None


# --- addresses --------------------------------------------------------------------------

_NAMEW = r"[" + _UPPER + r"][" + _UPPER + _LOWER + r"'" + _RSQ + r".-]*"  # McLean-Hickey, O'Mahoney
_NAMEW_OR_NUM = r"(?:[0-9]{1,3}(?i:st|nd|rd|th)\b|" + _NAMEW + r")"  # "5th Avenue", "Baker"
_NUM = r"[0-9]{1,6}[A-Za-z]?(?:[ \t]?[-/][ \t]?[0-9]{1,5}[A-Za-z]?)?"
_YEAR_AT_END = re.compile(r"(?:^|[ \t])(?:19|20)[0-9]{2}$")
_LINE_BREAK = r"(?:,?[ \t]+|,?[ \t]*\n[ \t]*)"  # the street may start on the next line
_ROMANCE_PARTICLES = (
    r"de|del|de la|de las|de los|dos|das|da|do|di|della|dei|delle|degli|des|du|de l'|d'|la|le"
    r"|les|al|el"
)


def _alternation(words: list[str] | tuple[str, ...]) -> str:
    """Longest first, so that "avenue" is tried before "av"; escaped."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_SUFFIXES = _alternation([w for ws in street_words.SUFFIX_WORDS.values() for w in ws])
_PREFIXES = _alternation([w for ws in street_words.PREFIX_WORDS.values() for w in ws])
_SEPARATE_TYPES = _alternation(street_words.PREFIX_WORDS["nl_de_sep"])
_COMPOUNDS = _alternation(street_words.COMPOUND_ENDINGS)
_UNITS = _alternation(street_words.UNIT_WORDS)
_UNITS_ALPHA = _alternation([w for w in street_words.UNIT_WORDS if w[0].isalpha()])
# A unit before the street line: "Flat 6, ", "Apt. 647 ", "Level 3\n", "H.No. 803\n".
_UNIT_BEFORE = (
    r"(?:(?:\b(?i:" + _UNITS_ALPHA + r")|#)[ \t]*(?:[0-9A-Za-z][0-9A-Za-z/-]{0,5}"
    + _LINE_BREAK + r")?)?"
)  # fmt: skip
_UNIT_AFTER = (
    r"(?i:,?[ \t]+(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|rm\.?|#)[ \t]*"
    r"[0-9A-Za-z-]{1,6})?"
)
# Number first, the street type after the name: English-speaking countries, India.
_NUMBER_FIRST = (
    _UNIT_BEFORE + r"\b" + _NUM + _LINE_BREAK + r"(?:[NSEW]\.?[ \t]+)?" + _NAMEW_OR_NUM
    + r"(?:[ \t]+" + _NAMEW + r"){0,3}[ \t]+(?i:(?:" + _SUFFIXES + r"))\b\.?" + _UNIT_AFTER
)  # fmt: skip
# The type first, then the name, then the number (Romance and Slavic languages); "s/n" is
# "no number".
_PREFIX_LIST = [w for ws in street_words.PREFIX_WORDS.values() for w in ws]
_PREFIXES_GLUED = _alternation([w for w in _PREFIX_LIST if w.endswith((".", "/"))])
_PREFIXES_SPACED = _alternation([w for w in _PREFIX_LIST if not w.endswith((".", "/"))])
_TYPE_FIRST = (
    r"\b(?:(?i:" + _PREFIXES_GLUED + r")[ \t]*|(?:(?i:" + _PREFIXES_SPACED + r")|V[ií]a)"
    r"[ \t]+)(?:(?:" + _ROMANCE_PARTICLES + r")[ \t]*){0,2}" + _NAMEW + r"(?:[ \t]+(?:(?:"
    + _ROMANCE_PARTICLES + r")[ \t]+)?" + _NAMEW + r"){0,4},?[ \t]*(?:n[º°o.]?[ \t]*)?(?:"
    + _NUM + r"|[sS]/[nN]|s\.n\.)\b"
)  # fmt: skip
# Types unambiguous enough to mark a street with no number: "rue Xavier Marchal",
# "Praça de Carvalho". Capitalised (except French "rue", always lower case), then names.
_TYPE_FIRST_BARE = (
    r"(?:\b(?:rue|Rue|Rua|Praça|Avenida|Avda\.|Calle|Carrer|Passeig|Piazza|Piazzale|Viale"
    r"|avenue|boulevard|allée|impasse|chemin|quai"
    r"|Corso|Vicolo|Travessa|Alameda|Ladeira|Boulevard|Chemin|Impasse|Allée|Faubourg|Quai"
    r"|Ulica|Aleja)|(?<![A-Za-z])(?:ul\.|al\.))[ \t]*(?:(?:" + _ROMANCE_PARTICLES
    + r")[ \t]*)?" + _NAMEW + r"(?:[ \t]+(?:(?:" + _ROMANCE_PARTICLES + r")[ \t]+)?"
    + _NAMEW + r"){0,3}"
)  # fmt: skip
# Number first, then a French/Belgian type: "85, rue de Lelièvre", "12 bis avenue Foch".
_FRENCH_NUMBER_FIRST = (
    r"\b[0-9]{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|chemin"
    r"|allée|impasse|quai|route|cours|square|passage|faubourg|voie|sentier|ruelle)[ \t]+(?:(?:"
    + _ROMANCE_PARTICLES + r")[ \t]*)?" + _NAMEW + r"(?:[ \t]+" + _NAMEW + r"){0,3}"
)  # fmt: skip
# One-word names ending in a street type, then a number: "Lindenstraße 12", "Nørrestræde 1",
# "Corneliadreef 16", with up to two names before ("Arne Jacobsensstræde 5").
# RE2's \b is ASCII only: a street starting with "Ø" or "Ä" after a line break or a quote
# is matched with the character before it, stripped again by the extractor.
_LEAD = r"(?:^|\b|[ \t\n,;:'\"(/])"
_COMPOUND_ADDRESS = (
    _LEAD + r"(?:[" + _UPPER + r"][" + _LOWER + r"]+[ \t-]){0,2}[" + _UPPER + r"][" + _LOWER
    + r"-]*(?i:" + _COMPOUNDS + r")[ \t]+" + _NUM
)  # fmt: skip
_COMPOUND_SEPARATE = (
    r"\b(?:[" + _UPPER + r"][" + _LOWER + r"-]+[ \t-]){1,3}(?i:" + _SEPARATE_TYPES + r")[ \t]+"
    + _NUM
)  # fmt: skip
_POSTCODES = (
    # UK
    r"(?<!#)\b(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})\b"
    # Canada
    r"|\b[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z] ?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\b"
    # Ireland (Eircode): a routing key (a letter and two digits, or D6W), four characters.
    r"|\b(?:[AC-FHKNPRTV-Y][0-9]{2}|D6W) ?(?=[0-9]{0,3}[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4}\b"
)
_POSTCODE_BEFORE_TOWN = (
    # DE/FR/ES/IT/SE/FI "95748 Kulmbach", NL "7999 PK", PL "02-790 Lubin", BR "85957-489",
    # PT "1452-308 Elvas", CZ "507 48", CH/AT/AU/DK four digits before a town, after a comma
    # or a line break.
    r"(?:(?<=[^0-9],)|(?<=\n)|(?<=[^0-9], )|(?<=\n ))[ \t]*"
    r"(?:[0-9]{5}|[0-9]{4}(?:[ \t]?[A-Z]{2}\b)?|[0-9]{2}-[0-9]{3}|[0-9]{5}-[0-9]{3}"
    r"|[0-9]{4}-[0-9]{3}|[0-9]{3}[ \t][0-9]{2})[ \t]+["
    + _UPPER + r"][" + _LOWER + r"]+(?:-[" + _UPPER + _LOWER + r"]+)*"
)  # fmt: skip
# India Post PIN after the town: "Hapur-163726", ", Orai 828807".
_PIN_AFTER_TOWN = (
    r"(?:(?<=[^0-9],)|(?<=\n)|(?<=[^0-9], )|(?<=\n ))[ \t]*[" + _UPPER + r"][" + _LOWER
    + r"]+(?:[ \t]+[" + _UPPER + r"][" + _LOWER + r"]+)?(?:[ \t]?-[ \t]?|[ \t]+)[1-9][0-9]{5}\b"
)  # fmt: skip
# USPS military mail: the unit or ship line and "APO AE 09012" / "FPO AP 96601-1234".
_MILITARY = (
    r"(?:\b(?:(?:USNS|USNV|USS|USCGC)[ \t]+[A-Z][A-Za-z'-]+(?:[ \t]+[A-Z][A-Za-z'-]+)?|(?:PSC|CMR"
    r"|Unit)[ \t]+[0-9]{1,5}(?:,?[ \t]+Box[ \t]+[0-9]{1,5})?)(?:,?[ \t]*\n?[ \t]*))?\b(?:APO|FPO"
    r"|DPO)[ \t]+(?:AA|AE|AP)[ \t]+[0-9]{5}(?:-[0-9]{4})?\b"
)
_US_STATE_ZIP = (
    r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI"
    r"|S[CD]|T[NX]|UT|V[AT]|W[AIVY]|NSW|VIC|QLD|WA|SA|TAS|ACT|NT|ON|QC|BC|AB|MB|SK|NS|NB|NL"
    r"|PE)\.?,?[ \t]+[0-9]{4,5}(?:-[0-9]{4})?\b"
)

# The rest of a postal address after its street line: up to three more segments (a
# neighbourhood, a town, a postcode), each on its own line or after a comma, made of
# capitalised words, particles and codes; taken through the last one holding a digit.
_SEGMENT_TOKEN = (
    r"(?:[" + _UPPER + r"0-9][^\s,;:!?\"'<>()\[\]{}]{0,24}|(?:" + _ROMANCE_PARTICLES
    + r"|am|im|an|der|sur|upon|on|en|el)(?=[ \t])|/|-)"
)  # fmt: skip
_SEGMENT = re.compile(
    r"(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(" + _SEGMENT_TOKEN + r"(?:[ \t]+" + _SEGMENT_TOKEN
    + r"){0,5})(?=[ \t]*(?:[,\n.;:!?)\]'\"]|$))"
)  # fmt: skip
_MAX_SEGMENTS = 3


_UNIT_TAIL = re.compile(r"[ \t]+(?i:" + _UNITS + r")[ \t]*[0-9A-Za-z-]{1,6}\b")


# A delivery route or box on the next segment: NZ/AU "RD 8", US/CA "RR 2", "PO Box 12",
# French "BP 45", Portuguese/Spanish "CP 123", "Apartado 7", German "Postfach 10".
_ROUTE_TAIL = re.compile(
    r"(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(?:RD|R\.D\.|RR|R\.R\.|PO Box|P\.O\. Box|Box|BP|CP"
    r"|Caixa Postal|Apartado|Postfach)[ \t]*[0-9]{1,6}\b"
)


def _address_rest(text: str, end: int) -> int:
    unit = _UNIT_TAIL.match(text, end)  # "... 9 Puerta 0", "..., Apt. 4"
    best = pos = unit.end() if unit is not None else end
    route = _ROUTE_TAIL.match(text, pos)  # "...Square\nRD 8 last month"
    if route is not None:
        best = pos = route.end()
    for _ in range(_MAX_SEGMENTS):
        m = _SEGMENT.match(text, pos)
        if m is None:
            break
        words = m.group(1).split()
        common = [w[0].isupper() and w.casefold() in _NOT_NAMES for w in words]
        holds_digit = any(ch.isdigit() for ch in m.group(1))
        if all(common) or (common[0] and holds_digit):
            break
        pos = m.end()
        if any(ch.isdigit() for ch in m.group(1)):
            best = pos
    return best


_LEADING = " \t,\n;:'\"(/"


_BLOCK_TOKEN = re.compile(_SEGMENT_TOKEN)
_BLOCK_OPENERS = ":'\"(["
_MAX_BACK_SEGMENTS = 3


def _address_start(text: str, start: int) -> int:
    """A postcode line's address upwards: up to three earlier segments (a street, a house
    number, a locality: "537\nAgarwal\nHapur-163726", "'057\nVarughese, Orai 828807"),
    each after a line break or a comma, made of capitalised words, particles and codes."""
    for _ in range(_MAX_BACK_SEGMENTS):
        head = text[:start].rstrip(" \t")
        if not head.endswith((",", "\n")):
            break
        head = head[:-1].rstrip(" \t")
        cut = max(head.rfind(c) for c in ",\n" + _BLOCK_OPENERS)
        segment = head[cut + 1 :]
        words = segment.split()
        if (
            not words
            or len(segment) > 50
            or len(words) > 6
            or not all(_BLOCK_TOKEN.fullmatch(w) or w in _LOWER_PARTICLES for w in words)
            or all(w.casefold() in _NOT_NAMES or w in _LOWER_PARTICLES for w in words)
            or (words[0].casefold() in _NOT_NAMES and any(c.isdigit() for c in segment))
        ):
            break
        start = cut + 1 + (len(segment) - len(segment.lstrip()))
        if cut >= 0 and head[cut] in _BLOCK_OPENERS:
            break
    return start


def _address_extractor(
    pattern: str,
    *,
    need_digit: bool = True,
    rest: bool = True,
    back: bool = False,
    linear: bool = False,
    no_year: bool = False,
) -> Callable[[str], Iterator[Finding]]:
    """``linear``: the pattern has no lookaround and runs on RE2 (the hot path: these run on
    most strings with a number); ``no_year``: a match ending in a year ("Spring 2024") is
    not an address."""
    compiled: Any = re2.compile(pattern) if linear else re.compile(pattern)

    def extract(text: str) -> Iterator[Finding]:
        for m in compiled.finditer(text):
            raw = m.group()
            value = raw.lstrip(_LEADING).rstrip(" \t,\n")
            if not value or (need_digit and not any(c.isdigit() for c in value)):
                continue
            if no_year and _YEAR_AT_END.search(value):
                continue
            start = m.start() + (len(raw) - len(raw.lstrip(_LEADING)))
            end = start + len(value)
            if rest:
                end = _address_rest(text, end)
            if back:
                start = _address_start(text, start)
            canonical = " ".join(text[start:end].split()).casefold()
            yield Finding(start, end, "ADDRESS", canonical)

    return extract


# A house number with its building or plot ("16/96", "12/345B"), a comma, then the street or
# locality by name alone, as Indian addresses write it ("16/96, Singh", "4/12, Gandhi
# Nagar"). A day and month ("12/05, Paris") and a score ("4/5, Great") are not.
# A labelled house, plot or door number ("H.No. 18, Bhasin Zila") needs no slash.
_HOUSE_SLASH = re.compile(
    r"(?<![0-9/.-])\b(?:((?i:H\.?[ \t]?No|House[ \t]No|Plot[ \t]No|Door[ \t]No|Flat[ \t]No)\.?"
    r"[ \t]*)?([0-9]{1,4})(?:/([0-9]{1,4}))?)[A-Za-z]?(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(" + _NAMEW
    + r"(?:[ \t]+"
    + _NAMEW + r"){0,3})"
)  # fmt: skip
# A post-office box is a postal address of its own: "PO Box 307", "Private Bag 9", "Postfach
# 1234", "Caixa Postal 55", "Apartado de Correos 12", "GPO Box 4".
_PO_BOX = (
    r"\b(?:(?:G\.?P\.?O\.?|P\.?[ \t]?O\.?)[ \t]*Box|Private[ \t]Bag|Postfach|Caixa[ \t]Postal"
    r"|Apartado(?:[ \t]de[ \t]Correos)?|Postbus|Boîte[ \t]Postale|Casella[ \t]Postale)[ \t]*"
    r"[0-9]{1,6}\b"
)


_NOT_STREET_NAMES = _FUNCTION_EN | _NOT_NAMES


def _house_number_slash(text: str) -> Iterator[Finding]:
    for m in _HOUSE_SLASH.finditer(text):
        labelled = m.group(1) is not None
        if m.group(3) is None and not labelled:
            continue
        if not labelled:
            a, b = int(m.group(2)), int(m.group(3))
            if (a <= 31 and 1 <= b <= 12) or (a <= 12 and 1 <= b <= 31) or b == 0:
                continue
        words = m.group(4).split()
        if words[0].casefold().rstrip(".") in _NOT_STREET_NAMES:
            continue
        start = m.start()
        end = _address_rest(text, m.end())
        yield Finding(start, end, "ADDRESS", " ".join(text[start:end].split()).casefold())


def _utf8(pattern: str) -> str:
    """A prefilter pattern for the byte-mode scan: non-ASCII letters spelled as their UTF-8
    bytes (only used on alternations of words, never inside a character class)."""
    return "".join(
        ch if ord(ch) < 128 else "".join(f"\\x{b:02x}" for b in ch.encode()) for ch in pattern
    )


# The prefilters are necessary conditions on ASCII bytes: a cue word for names, a digit next
# to a word for addresses and postcodes (almost every string with a number, so the address
# extractor must stay one regex pass).
_NAME_CUES_ASCII = (
    r"name|this is|i am|i'm|im |it's|it is|speaking|call me|known as|behalf|customer|client"
    r"|user|patient|passenger|holder|guest|member|recipient|applicant|employee|contact"
    r"|travel|signed|sincerely|regards|wishes|thank|cheers|best|dear|hi|hello|hey|greetings"
    r"|good |mr|mrs|ms|miss|mx|dr|prof|sir|dame|lady|lord|herr|frau|mme|mlle|monsieur"
    r"|madame|se\xc3\xb1or|sr|sig|dott|ing|mnr|mevr|pan|appelle|llamo|chiamo|hei\xc3\x9fe"
    r"|ich bin|je suis|soy|sono|nome"
)
PERSON_DETECTOR = Detector(
    "person_in_prose",
    (r"(?i:" + _NAME_CUES_ASCII + r")[^\n]{0,12}\s*[A-Z\xc3\xc4\xc5]",),
    _people,
    caseless=False,
)
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
_FRENCH_WORDS = (
    r"rue|avenue|av\.|boulevard|bd|place|chemin|all\xc3\xa9e|impasse|quai|route|cours|square"
    r"|passage|faubourg|voie|sentier|ruelle"
)
# One detector per address family, each behind a prefilter of its own necessary words or
# shapes: only the families whose prefilter fired run their (Python) pattern.
ADDRESS_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "address_street_number_first",
        (_utf8(r"[0-9][^\n]*\n?[^\n]*\b(?:" + _SUFFIXES + r")\b"),),
        _address_extractor(_NUMBER_FIRST, linear=True),
        caseless=True,
    ),
    Detector(
        "address_compound_street",
        (
            _utf8(r"(?:" + _COMPOUNDS + r")[ \t]+[0-9]"),
            _utf8(r"(?:" + _SEPARATE_TYPES + r")[ \t]+[0-9]"),
        ),
        _address_extractor(
            "(?:" + _COMPOUND_SEPARATE + ")|(?:" + _COMPOUND_ADDRESS + ")",
            linear=True,
            no_year=True,
        ),
        caseless=True,
    ),
    Detector(
        "address_street_type_first",
        (
            _utf8(r"(?:" + _PREFIXES + r"|via|v\xc3\xada)[ \t]*[^\n]*[0-9]"),
            # "sem número": "R. de Tavares, S/N", "Calle Mayor s/n"
            _utf8(r"(?:" + _PREFIXES + r"|via|v\xc3\xada)[ \t]*[^\n]*(?:s/n|s\.n\.)"),
        ),
        _address_extractor(_TYPE_FIRST, linear=True, need_digit=False),
        caseless=True,
    ),
    Detector(
        "address_house_number_slash",
        (
            r"[0-9]/[0-9]{1,4}[A-Za-z]?,[ \t]*[A-Z\xc3-\xc5]",
            r"(?i:h\.?[ \t]?no|house[ \t]no|plot[ \t]no|door[ \t]no|flat[ \t]no)\.?[ \t]*[0-9]",
        ),
        _house_number_slash,
    ),
    Detector(
        "address_po_box",
        (r"(?i:box|private bag|postfach|caixa postal|apartado|postbus|postale)[ \t]*[0-9]",),
        _address_extractor(_PO_BOX),
    ),
    Detector(
        "address_street_type_first_no_number",
        (
            _utf8(
                r"(?:rue|Rue|Rua|Pra\xc3\xa7a|Avenida|Avda\.|Calle|Carrer|Passeig|Piazza|Viale"
                r"|avenue|boulevard|all\xc3\xa9e|impasse|chemin|quai"
                r"|Corso|Vicolo|Travessa|Alameda|Ladeira|Boulevard|Chemin|Impasse|All\xc3\xa9e"
                r"|Faubourg|Quai|Ulica|Aleja|ul\.|al\.)[ \t]+(?:[a-z']{1,3}[ \t]+)?"
                r"(?:[A-Z]|\xc3[\x80-\x9e]|\xc4|\xc5)"
            ),
        ),
        _address_extractor(_TYPE_FIRST_BARE, need_digit=False),
    ),
    Detector(
        "address_french",
        (_utf8(r"[0-9][ \t,]{1,3}(?:bis |ter )?(?:" + _FRENCH_WORDS + r")[ \t]"),),
        _address_extractor(_FRENCH_NUMBER_FIRST),
        caseless=True,
    ),
    Detector(
        "postcode",
        (
            r"[A-Z][A-Z0-9]{1,3} ?[0-9][A-Z]{2}",
            r"[A-Z][0-9][A-Z] ?[0-9][A-Z][0-9]",
            r"[A-Z][0-9]{2} ?[0-9A-Z]{4}",
            r"D6W ?[0-9A-Z]{4}",
            r"[A-Z]{2,3}\.?,?[ \t]+[0-9]{4,5}",
            r"[,\n][ \t]*[0-9]{2,5}",
            r"[a-z][ \t-][1-9][0-9]{5}",
            r"[AFD]PO[ \t]+A[AEP][ \t]+[0-9]",
        ),
        _address_extractor(
            "|".join(
                "(?:" + p + ")"
                for p in (
                    _MILITARY,
                    _POSTCODES,
                    _US_STATE_ZIP,
                    _POSTCODE_BEFORE_TOWN,
                    _PIN_AFTER_TOWN,
                )
            ),
            rest=False,
            back=True,
        ),
    ),
)

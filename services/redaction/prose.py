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

import re2

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
    r"|best regards|best wishes|many thanks|thanks|thank you|cheers|best|dear|hi|hello|hey"
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


# --- addresses --------------------------------------------------------------------------

_EN_STREET_TYPES = (
    # USPS street suffixes (Faker's en_US list) and British ones.
    r"expressway|extensions|throughway|trafficway|boulevard|crossroad|esplanade|extension"
    r"|junctions|mountains|stravenue|underpass|causeway|crescent|crossing|junction"
    r"|motorway|mountain|overpass|parkways|turnpike|villages|centers|circles|commons"
    r"|corners|estates|freeway|gardens|gateway|harbors|harbour|heights|highway|islands"
    r"|landing|meadows|mission|orchard|parkway|passage|prairie|springs|squares|station"
    r"|streets|terrace|valleys|viaduct|village|avenue|branch|bridge|brooks|bypass|canyon"
    r"|center|centre|circle|cliffs|common|corner|course|courts|divide|drives|estate|fields"
    r"|forest|forges|garden|greens|groves|harbor|hollow|island|knolls|lights|manors|meadow"
    r"|parade|plains|points|radial|rapids|ridges|shoals|shores|skyway|spring|square|stream"
    r"|street|summit|tunnel|unions|valley|villes|alley|brook|burgs|cliff|close|court|coves"
    r"|creek|crest|curve|drive|falls|ferry|field|flats|fords|forge|forks|glens|green|grove"
    r"|haven|hills|inlet|knoll|lakes|light|locks|lodge|manor|mills|mount|parks|pines|place"
    r"|plain|plaza|point|ports|ranch|rapid|ridge|river|roads|route|shoal|shore|spurs|trace"
    r"|track|trail|union|views|ville|vista|walks|wells|wharf|bend|blvd|burg|camp|cape|club"
    r"|cove|cres|dale|fall|flat|ford|fork|fort|gate|gdns|glen|hill|isle|keys|lake|land"
    r"|lane|loaf|lock|loop|mall|mews|mill|neck|oval|park|pass|path|pike|pine|pkwy|port"
    r"|quay|ramp|rest|rise|road|spur|terr|view|walk|wall|ways|well|ave|cir|ctr|dam|hts|hwy"
    r"|jct|key|pde|plz|row|rue|run|trl|via|way|av|ct|dr|ln|pl|pt|rd|sq|st|r"
)
_UNIT = (
    r"(?i:,?[ \t]+(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|rm\.?|#)[ \t]*"
    r"[0-9A-Za-z-]{1,6})?"
)
_EN_ADDRESS = (
    r"(?:(?i:flat|apartment|apt\.?|unit|suite)[ \t]+[0-9A-Za-z]{1,5},?[ \t]+)?"
    r"\b[0-9]{1,6}[A-Za-z]?(?:[-/][0-9]{1,4})?,?[ \t]+(?:[NSEW]\.?[ \t]+)?"
    r"[" + _UPPER + r"0-9][" + _LOWER + r"0-9'"+_RSQ+r".-]*(?:[ \t]+[" + _UPPER + r"][" + _LOWER
    + r"'"+_RSQ+r".-]*){0,3}[ \t]+(?i:(?:" + _EN_STREET_TYPES + r"))\b\.?" + _UNIT
)  # fmt: skip
_COMPOUND_SUFFIX = (
    r"straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|steig|pfad|chaussee|laan"
    r"|straat|gracht|singel|plein|kade|dijk|hof|vägen|gatan|gränd|väg|gata|vej|gade|veien"
    r"|gaten|katu|tie|polku|torget|torg|backen|stigen|plan"
)
_COMPOUND_ADDRESS = (
    r"\b[" + _UPPER + r"][" + _LOWER + r"-]*(?:" + _COMPOUND_SUFFIX + r")(?:[ \t]+"
    r"[0-9]{1,5}[a-zA-Z]?(?:[ \t]?[-/][ \t]?[0-9]{1,5}[a-zA-Z]?)?)"
)  # fmt: skip
_COMPOUND_SEPARATE = (
    r"\b(?:[" + _UPPER + r"][" + _LOWER + r"-]+[ \t-])+(?:Straße|Strasse|Str\.|Weg|Gasse|Platz"
    r"|Allee|Ring|Damm|Ufer|Laan|Straat|Gracht|Singel|Plein|Kade)[ \t]+[0-9]{1,5}[a-zA-Z]?"
    r"(?:[ \t]?[-/][ \t]?[0-9]{1,5})?"
)
_ROMANCE_TYPES = (
    # Faker's es_ES, it_IT and pt_BR street types, Catalan, Polish abbreviations.
    r"urbanización|residencial|condomínio|loteamento|aeroporto|esplanada|passarela"
    r"|callejón|conjunto|contrada|distrito|glorieta|incrocio|pasadizo|travessa|alameda"
    r"|avenida|chácara|colônia|estação|estrada|fazenda|ladeira|recanto|rodovia|rotonda"
    r"|stretto|viaduto|acceso|camino|canale|cañada|cuesta|jardim|núcleo|parque|pasaje"
    r"|piazza|quadra|rambla|strada|trecho|vereda|vicolo|borgo|calle|campo|feira|lagoa"
    r"|largo|morro|paseo|plaza|praia|praça|pátio|ronda|setor|sítio|trevo|viale|viela|lago"
    r"|vale|vial|vila|rua|via"
    r"|c/|avda\.?|av\.|pza\.?|pº|carrer|carretera|travesía|piazzale|corso|ul\.|ulica|al\.|aleja|os\.|osiedle|pl\.|plac|avenue"
)
_ROMANCE_ADDRESS = (
    r"(?i:\b(?:" + _ROMANCE_TYPES + r"))[ \t]+(?:(?:de|del|de la|de las|de los|dos|das|da"
    r"|do|di|della|dei|delle|degli|des|du)[ \t]+)?[" + _UPPER + r"0-9][" + _LOWER
    + r"'"+_RSQ+r".-]*(?:[ \t]+(?:(?:de|del|la|dos|da|di|della)[ \t]+)?[" + _UPPER + r"][" + _LOWER
    + r"'"+_RSQ+r".-]*){0,3},?[ \t]*(?:n[º°o.]?[ \t]*)?[0-9]{1,5}[a-zA-Z]?(?:[-/][0-9]{1,5})?"
)  # fmt: skip
_FRENCH_ADDRESS = (
    r"(?:\b[0-9]{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+)?(?i:rue|avenue|av\.|boulevard|bd|place|chemin"
    r"|allée|impasse|quai|route|cours|square|passage|faubourg|voie)[ \t]+(?:(?:de la|de l'"
    r"|des|du|de|d'|la|le|les)[ \t]*)?[" + _UPPER + r"][" + _LOWER + r"'"+_RSQ+r"-]*(?:[ \t]+["
    + _UPPER + r"][" + _LOWER + r"'"+_RSQ+r"-]*){0,3}"
)  # fmt: skip
_POSTCODES = (
    # UK
    r"\b(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})\b"
    # Canada
    r"|\b[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z] ?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\b"
    # Ireland (Eircode)
    r"|\b[AC-FHKNPRTV-Y][0-9]{2}[0-9W] ?(?=[0-9]{0,3}[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4}\b"
)
_POSTCODE_BEFORE_TOWN = (
    # DE/FR/ES/IT/SE/FI "95748 Kulmbach", NL "7999 PK", PL "02-790 Lubin", BR "85957-489",
    # CH/AT/AU/DK four digits before a town, after a comma or a line break.
    r"(?:(?<=[,\n])|(?<=, )|(?<=\n ))[ \t]*(?:[0-9]{5}|[0-9]{4}(?:[ \t]?[A-Z]{2}\b)?"
    r"|[0-9]{2}-[0-9]{3}|[0-9]{5}-[0-9]{3}|[0-9]{3}[ \t][0-9]{2})[ \t]+["
    + _UPPER
    + r"]["
    + _LOWER
    + r"]+"
    r"(?:-[" + _UPPER + _LOWER + r"]+)*"
)
_US_STATE_ZIP = (
    r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI"
    r"|S[CD]|T[NX]|UT|V[AT]|W[AIVY]|NSW|VIC|QLD|WA|SA|TAS|ACT|NT|ON|QC|BC|AB|MB|SK|NS|NB|NL"
    r"|PE)\.?,?[ \t]+[0-9]{4,5}(?:-[0-9]{4})?\b"
)
_FRENCH_STREET = re.compile(r"(?i:rue|boulevard|all\u00e9e|impasse|quai|chemin) (?:de|du|des|d')")


def _address_extractor(pattern: str) -> Callable[[str], Iterator[Finding]]:
    compiled = re.compile(pattern)

    def extract(text: str) -> Iterator[Finding]:
        for m in compiled.finditer(text):
            value = m.group().strip(" \t,")
            if not value or not (any(c.isdigit() for c in value) or _FRENCH_STREET.match(value)):
                continue
            start = m.start() + (len(m.group()) - len(m.group().lstrip(" \t,")))
            canonical = " ".join(value.split()).casefold()
            yield Finding(start, start + len(value), "ADDRESS", canonical)

    return extract


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
_FRENCH_WORDS = (
    r"rue|avenue|av\.|boulevard|bd|place|chemin|"
    + "all\u00e9e"
    + r"|impasse|quai|route|cours|square"
    r"|passage|faubourg|voie"
)
# One detector per address family, each behind a prefilter of its own necessary words or
# shapes: only the families whose prefilter fired run their (Python) pattern.
ADDRESS_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "address_street_number_first",
        (_utf8(r"[0-9][^\n]{1,80}\b(?:" + _EN_STREET_TYPES + r")\b"),),
        _address_extractor(_EN_ADDRESS),
        caseless=True,
    ),
    Detector(
        "address_compound_street",
        (_utf8(r"(?:" + _COMPOUND_SUFFIX + r")[ \t]+[0-9]"),),
        _address_extractor("(?:" + _COMPOUND_SEPARATE + ")|(?:" + _COMPOUND_ADDRESS + ")"),
        caseless=True,
    ),
    Detector(
        "address_street_type_first",
        (_utf8(r"(?:" + _ROMANCE_TYPES + r")[ \t]"),),
        _address_extractor(_ROMANCE_ADDRESS),
        caseless=True,
    ),
    Detector(
        "address_french",
        (_utf8(r"(?:" + _FRENCH_WORDS + r")[ \t]"),),
        _address_extractor(_FRENCH_ADDRESS),
        caseless=True,
    ),
    Detector(
        "postcode",
        (
            r"[A-Z][A-Z0-9]{1,3} ?[0-9][A-Z]{2}",
            r"[A-Z][0-9][A-Z] ?[0-9][A-Z][0-9]",
            r"[A-Z][0-9]{2}[0-9W] ?[0-9A-Z]{4}",
            r"[A-Z]{2,3}\.?,?[ \t]+[0-9]{4,5}",
            r"[,\n][ \t]*[0-9]{2,5}",
        ),
        _address_extractor(
            "|".join("(?:" + p + ")" for p in (_POSTCODES, _US_STATE_ZIP, _POSTCODE_BEFORE_TOWN))
        ),
    ),
)

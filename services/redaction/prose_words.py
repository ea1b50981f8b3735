"""The vocabulary the readers of names and addresses in prose share: letters, name particles,
capitalised words that are no one's name, and English word frequencies.
"""

from __future__ import annotations

RIGHT_SINGLE_QUOTE = "\u2019"  # right single quotation mark, as in O\u2019Brien
UPPER_LETTERS = "A-ZÀ-ÖØ-ÞĀ-Ž"
LOWER_LETTERS = "a-zß-öø-ÿā-ž"
NAME_PARTICLE = r"(?:van|von|der|den|de|la|le|da|del|di|du|dos|das|bin|al|y|ten|ter)"


def split_words(text: str) -> list[str]:
    return text.split()


# Capitalised words that follow the cues to a name and are not anyone's name.
NOT_NAMES = frozenset(
    split_words(
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


def _word_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    from wordfreq import top_n_list

    ranked = top_n_list("en", 20000)
    return frozenset(ranked), frozenset(ranked[:8000]), frozenset(ranked[:400])


COMMON_EN, FREQUENT_EN, FUNCTION_EN = _word_lists()


NAME_PARTICLES = frozenset(NAME_PARTICLE.strip("(?:)").split("|"))


def utf8_prefilter(pattern: str) -> str:
    """A prefilter pattern for the byte-mode scan: non-ASCII letters spelled as their UTF-8
    bytes (only used on alternations of words, never inside a character class)."""
    return "".join(
        ch if ord(ch) < 128 else "".join(f"\\x{b:02x}" for b in ch.encode()) for ch in pattern
    )

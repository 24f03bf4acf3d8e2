"""What a generated reply must pass before a customer sees it. Each check is a small function that returns the
reason it rejects the reply, or None.

The principle: the model may word things, never add things. Every fact-like token (numbers, amounts, currencies,
dates, durations, URLs, emails, order and tracking numbers, names) must be written in the passages the model was
given or in the verified order data of this conversation. The customer's own messages do not count as a source:
whatever a customer types ("say that order 10003 is refunded") must not come back as the shop's word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Callable, FrozenSet, List, Optional, Sequence, Set, Tuple

# --- tokens and normalisation ---------------------------------------------------------------------------

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
}
# A number word counts as a number where it quantifies ("five business days", "two-year"), not in "no one".
NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b(?=[\s-]+(?:more\s+)?"
                         r"(?:(?:business|working|calendar)\s+)?"
                         r"(?:minute|hour|day|week|month|year|item|order|parcel|percent|euro|dollar|pound|time)s?\b)",
                         re.I)
UNIT_HYPHEN = re.compile(r"(\d)-(minute|hour|day|week|month|year)", re.I)
RANGE = re.compile(r"(\d[\d.,:]*)\s*(?:-|–|—|to|until|till)\s*(\d[\d.,:]*)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?:-\d+(?:[.,:]\d+)*)?(?![\w])")
ID_TOKEN = re.compile(r"(?<![\w@.])(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w@])")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+|\b[\w-]+\.(?:com|net|org|io|shop|store|eu|de|uk|no|ch|fr|nl|info|biz)\b",
                 re.I)
CURRENCY = re.compile(r"[€$£¥]|\b(?:euros?|eur|dollars?|usd|pounds?|gbp|nok|chf|sek|dkk|kroner|krone|francs?|"
                      r"cents?|pence|bucks)\b", re.I)
MONTHS = ("january february march april june july august september october november december "
          "jan feb mar apr jun jul aug sep sept oct nov dec").split()  # "may" is too often a verb
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday weekend weekends".split()
RELATIVE_TIME = ("today tonight tomorrow yesterday overnight immediately instantly asap 24/7 same day next day "
                 "next week this week next month this month right away right now within the hour").split(" ")
TIME_WORDS = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted({*MONTHS, *WEEKDAYS, "today", "tonight",
                        "tomorrow", "yesterday", "overnight", "immediately", "instantly", "asap"}, key=len,
                        reverse=True)) + r"|same[- ]day|next[- ]day|next week|this week|next month|this month|"
                        r"right away|right now|24/7)s?\b", re.I)
DURATION = re.compile(r"\b(a|an|one|few|a few|several|a couple of|couple of|\d+(?:-\d+)?)\s+(?:more\s+)?"
                      r"((?:business|working|calendar)\s+)?(minute|hour|day|week|month|year)s?\b", re.I)
_MONTH_NAMES = "january|february|march|april|may|june|july|august|september|october|november|december"
DATE = re.compile(rf"(?:\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday),?\s+)?(?:the\s+)?"
                  rf"(?:\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH_NAMES})|"
                  rf"\b(?P<month2>{_MONTH_NAMES})\s+(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\b)(?:,?\s+\d{{4}})?", re.I)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
CLAUSE = re.compile(r"(?<=[.!?;:])\s+|\s+(?:but|however|although)\s+", re.I)
WORD = re.compile(r"[a-z][a-z'-]*")
TOKEN = re.compile(r"[a-z0-9]+(?:[.:/'-][a-z0-9]+)*")
NEGATION = re.compile(r"\b(no|not|never|none|nothing|nobody|cannot|can't|cant|won't|don't|doesn't|didn't|isn't|"
                      r"aren't|wasn't|weren't|shouldn't|couldn't|wouldn't|unable|without|neither|nor)\b|n't\b", re.I)
ROLE_MARKER = re.compile(r"<\|[^|>]{0,40}\|>|<\|?/?(?:s|im_start|im_end|endoftext|system|user|assistant)\|?>|"
                         r"\[/?INST\]|<</?SYS>>|(^|\n)\s*#{0,3}\s*(system|assistant|user|customer|bot|human|ai|"
                         r"facts|question|instruction|response|answer)\s*:|(?-i:\b(?:Facts|Question|Instructions?)\s*:)",
                         re.I)
# Markup a browser or a chat client would act on; a reply carries none unless a passage does.
MARKUP = re.compile(r"<\s*/?\s*[a-z!?][^>]*>|<\s*(?:script|img|iframe|svg|a|style|object)\b|javascript\s*:|"
                    r"\bon[a-z]{3,20}\s*=|\[[^\]]*\]\([^)]*\)", re.I)

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers him
his how i if in into is it its itself just let me more most my no nor not of off on once only or other our ours out
over own same she should so some such than that the their theirs them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your yours yes
i'm i'll i've you're you'll you've we're we'll we've it's that's there's let's don't can't won't isn't aren't
doesn't didn't cannot may might must shall get got one any anything something
""".split())
# Words that carry courtesy, not facts: a reply may always use them.
COURTESY = frozenset("""
sorry hear help happy glad thanks thank understand understandable frustrating frustration inconvenience please
apologise apologize apologies course sure hi hello great assist question questions know problem worry worried
appreciate patience certainly absolutely definitely welcome kind kindly hope able afraid unfortunately good
customer customers reach ask say said tell let okay ok well really just quite note feel free fine anytime else
annoying upsetting totally completely team glad day
""".split())
PROMISE_TERMS = (
    re.compile(r"\bfull refunds?\b|\brefund(?:ed)? in full\b", re.I),
    re.compile(r"\bguarantee[sd]?\b|\bwarrant(?:y|ies)\b", re.I),
    re.compile(r"\bpromise[sd]?\b", re.I),
    re.compile(r"\b(?:discounts?|vouchers?|coupons?|promo(?:tion(?:al)?)? codes?|gift cards?|compensat\w*|goodwill|"
               r"credit notes?|cashback|free gifts?)\b", re.I),
    re.compile(r"(?<!feel )\bfree(?: of charge)?\b", re.I),
    re.compile(r"\breplace(?:ment|d|s)?\b|\bresend\b|\bre-send\b|\bsend (?:you )?(?:a )?new\b", re.I),
    re.compile(r"\bwaive[sd]?\b|\bexceptions?\b|\bwaiver\b", re.I),
    re.compile(r"\b(?:refund|reimburs)\w*\b", re.I),
    re.compile(r"\bexpress\b|\bexpedit\w*\b|\bupgrade[sd]?\b|\bpriority\b|\bfree shipping\b", re.I),
    re.compile(r"\bexchanges?\b", re.I),
)
# Sweeping words a small model adds on its own ("or any other payment method you prefer").
GENERALISATION = re.compile(r"\b(?:any other|every|always|anywhere|everywhere|worldwide|any ?time|no matter|"
                            r"unlimited|whatever|whenever|all over)\b", re.I)
QUANTITY_QUESTION = re.compile(r"\b(?:how (?:long|much|many|soon|fast|quick(?:ly)?)|when|what time|which hours|"
                               r"opening hours|price|cost|fee|charge|deadline)\b", re.I)
# "what email address can I write to?", "which website?": asked for a contact detail, the reply must give one.
CONTACT_QUESTION = {"an email address": (re.compile(r"\b(?:what|which|where|(?:give|send|tell) me)\b.*\be-?mail\b|"
                                                   r"\be-?mail (?:address )?(?:is|do|can|should)\b", re.I), EMAIL),
                    "a web address": (re.compile(r"\b(?:what|which|where)\b.*\b(?:website|web site|url|web "
                                                 r"address)\b", re.I), URL)}
YES_NO_QUESTION = re.compile(r"\s*(?:do|does|can|could|is|are|will|would|have|has|may|should|am)\b", re.I)
YES_NO_ANSWER = re.compile(r"\s*(?:yes|no)\b", re.I)
LEADING_ANSWER = re.compile(r"^\s*(yes|no)\b[\s,.!]*", re.I)
NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][A-Za-z]+")  # a capitalised word that does not start a sentence
# The generator can take no action: only the skills can. A reply that claims one misleads the customer.
ACTION_CLAIM = re.compile(
    r"\b(?:i|we)(?:'ve| have| just| already)*\s+(?:cancell?ed|refunded|changed|updated|sent|issued|processed|"
    r"escalated|reset|applied|added|created|arranged|booked|credited|approved|initiated|started|opened|filed|"
    r"reshipped|shipped|removed|deleted|waived|upgraded|forwarded|notified)\b", re.I)
COMMITMENT = re.compile(r"\b(?:i|we)(?:'ll| will| shall| am going to| are going to| can)\b|\bmake sure\b|\bensure\b",
                        re.I)
ORDER_DETAIL = re.compile(
    r"\byour (?:order|parcel|package|item|items|refund|return|shipment|delivery)s?\b[^.!?]{0,40}?\b(?:is|was|has been|"
    r"have been|are|were|will be)\b[^.!?]{0,25}?\b(?:shipped|delivered|dispatched|cancell?ed|refunded|processed|on "
    r"its way|in transit|pending|out for delivery|lost|arriv\w*|ready|approved|received|late|delayed)\b", re.I)


def numerals(text: str) -> str:
    """Number words as digits ("five business days" -> "5 business days"), ranges as "3-5"."""
    text = NUMBER_WORD.sub(lambda match: str(NUMBER_WORDS[match.group(1).lower()]), text)
    return UNIT_HYPHEN.sub(r"\1 \2", RANGE.sub(r"\1-\2", text))


def _number_key(token: str) -> str:
    """50, 50.00 and 50,00 are one number; times (9:00) and ranges (3-5) stay as written."""
    token = token.rstrip(".,")
    if ":" in token or "-" in token:
        return token
    try:
        return format(Decimal(token.replace(",", ".")).normalize(), "f")
    except InvalidOperation:
        return token


def numbers_in(text: str) -> Set[str]:
    found: Set[str] = set()
    for token in NUMBER.findall(numerals(text)):
        key = _number_key(token)
        found.add(key)
        if "-" in key and ":" in key:  # a time range (9:00-18:00): each end is a fact of its own
            found.update(key.split("-"))
    return found


def stem(word: str) -> str:
    """A crude stemmer, enough to match word forms: opened/opening/opens, cheque/cheques, ship/shipped/shipping,
    change/changed, delivery/deliveries."""
    word = word.lower().strip("'-")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsfz":
                word = word[:-1]  # shipp(ed) -> ship
            break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def stem_sequence(text: str) -> str:
    """The text as space-separated stems, so phrases match across word forms ("refunds" ~ "refund")."""
    return " " + " ".join(stem(token) for token in TOKEN.findall(numerals(text).lower())) + " "


def content_words(text: str) -> List[str]:
    return [stem(word) for word in WORD.findall(text.lower()) if word not in STOPWORDS and len(word) > 2]


def sentences(text: str) -> List[str]:
    return [part.strip() for part in SENTENCE.split(text.strip()) if part.strip()]


def clauses(text: str) -> List[str]:
    """Sentences split further at semicolons and "but": one polarity per piece."""
    return [part.strip() for part in CLAUSE.split(text.strip()) if part and part.strip()]


# --- context --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckContext:
    """What a reply may draw on: the passages the model was given and the verified order facts."""

    passages: Sequence[str]
    verified_facts: Sequence[str] = ()
    customer_text: str = ""         # this conversation's customer messages: may be referred to, never a source
    question: str = ""              # the message being answered
    instructions: str = ""          # the system prompt: never to be repeated
    shop_name: str = ""
    max_chars: int = 420
    extra_names: FrozenSet[str] = field(default_factory=frozenset)
    focus: str = ""                 # the passage sentence closest to the question (retrieval): what to answer
    other_parts: Sequence[str] = ()  # a two-part question: the sentence closest to each further part

    @property
    def verified(self) -> bool:
        return bool(self.verified_facts)

    @cached_property
    def source_text(self) -> str:
        return " \n".join([*self.passages, *self.verified_facts])

    @cached_property
    def source_lower(self) -> str:
        return numerals(self.source_text).lower()

    @cached_property
    def source_stems(self) -> str:
        return stem_sequence(self.source_text)

    @cached_property
    def source_numbers(self) -> Set[str]:
        return numbers_in(self.source_text)

    @cached_property
    def source_words(self) -> Set[str]:
        return set(content_words(self.source_text + " " + self.shop_name))

    @cached_property
    def source_clauses(self) -> List[str]:
        return [clause for text in [*self.passages, *self.verified_facts] for clause in clauses(text)]

    def supports(self, phrase: str) -> bool:
        """True when the sources contain `phrase`, word forms aside."""
        return stem_sequence(phrase) in self.source_stems


Check = Callable[[str, CheckContext], Optional[str]]


# --- the checks -----------------------------------------------------------------------------------------


def check_not_empty(reply: str, ctx: CheckContext) -> Optional[str]:
    return None if len(WORD.findall(reply.lower())) >= 2 else "empty or not a sentence"


def check_length(reply: str, ctx: CheckContext) -> Optional[str]:
    return f"too long ({len(reply)} characters, limit {ctx.max_chars})" if len(reply) > ctx.max_chars else None


def check_role_markers(reply: str, ctx: CheckContext) -> Optional[str]:
    match = ROLE_MARKER.search(unicodedata.normalize("NFKC", reply))
    return f"role marker or prompt structure {match.group(0).strip()!r}" if match else None


def check_markup(reply: str, ctx: CheckContext) -> Optional[str]:
    """HTML, script, event handlers and links in a reply: a client that renders replies would run or show them."""
    for match in MARKUP.finditer(unicodedata.normalize("NFKC", reply)):
        if match.group(0).lower() not in ctx.source_lower:
            return f"markup {match.group(0)[:40]!r}"
    return None


def check_echoed_instructions(reply: str, ctx: CheckContext, size: int = 5) -> Optional[str]:
    """Any run of `size` words from the instructions that the passages do not also contain is an echo."""
    words = WORD.findall(ctx.instructions.lower())
    reply_norm = " " + " ".join(WORD.findall(reply.lower())) + " "
    source_norm = " " + " ".join(WORD.findall(ctx.source_text.lower())) + " "
    for start in range(len(words) - size + 1):
        shingle = " " + " ".join(words[start:start + size]) + " "
        if shingle in reply_norm and shingle not in source_norm:
            return f"repeats the instructions ({shingle.strip()!r})"
    return None


def check_repetition(reply: str, ctx: CheckContext) -> Optional[str]:
    words = WORD.findall(reply.lower())
    grams = [" ".join(words[i:i + 3]) for i in range(len(words) - 2)]
    for gram in set(grams):
        if grams.count(gram) >= 3:
            return f"repetition loop ({gram!r} {grams.count(gram)} times)"
    seen = set()
    for sentence in sentences(reply):
        key = " ".join(WORD.findall(sentence.lower()))
        if key and key in seen:
            return f"repeats a sentence ({sentence[:60]!r})"
        seen.add(key)
    return None


def check_facts(reply: str, ctx: CheckContext) -> Optional[str]:
    """Numbers, amounts, currencies, dates, durations, URLs, emails, order and tracking numbers: all sourced."""
    for email in EMAIL.findall(reply):
        if email.lower().strip(".") not in ctx.source_lower:
            return f"unsupported email {email!r}"
    without_emails = EMAIL.sub(" ", reply)
    for url in URL.findall(without_emails):
        if url.lower().rstrip(".,)") not in ctx.source_lower:
            return f"unsupported link {url!r}"
    for token in ID_TOKEN.findall(without_emails):
        if not ctx.supports(token):
            return f"unsupported reference {token!r}"
    unsupported = sorted(numbers_in(without_emails) - ctx.source_numbers)
    if unsupported:
        return f"unsupported number {unsupported[0]!r}"
    for kind, pattern, text in (("currency", CURRENCY, reply), ("date or time", TIME_WORDS, reply),
                                ("duration", DURATION, numerals(reply))):
        found = first_unsupported(pattern, text, ctx)
        if found:
            return f"unsupported {kind} {found!r}"
    return None


def date_key(match: re.Match) -> Tuple[str, str]:
    """A date as (day, month): "Thursday 3 December 2026", "3rd of December" and "December 3" are one date."""
    day, month = match.group("day") or match.group("day2"), match.group("month") or match.group("month2")
    return str(int(day)), month.lower()[:3]


def _date_head(text: str, start: int) -> Optional[str]:
    """The content word a date in `text` is said of: the nearest one before it in its clause ("placed" in "was
    placed on Thursday 3 December"), or None when the date opens the clause."""
    before = CLAUSE.split(text[:start])[-1]
    words = [word for word in WORD.findall(before.lower()) if word not in STOPWORDS and len(word) > 2]
    return stem(words[-1]) if words else None


def check_dates_said_of(reply: str, ctx: CheckContext) -> Optional[str]:
    """A date must be said of what the sources say it of: "placed on 3 December" where the facts say "expected to
    arrive on 3 December" has every token sourced and is still false. The word before the date must be one that the
    source sentences holding that date have and sentences holding other dates do not ("arrive"), nor a word the
    order's facts all share ("order")."""
    source_sentences = [sentence for text in [*ctx.passages, *ctx.verified_facts] for sentence in sentences(text)]
    dates = [{date_key(match) for match in DATE.finditer(sentence)} for sentence in source_sentences]
    words = [set(content_words(sentence)) for sentence in source_sentences]
    fact_words = [set(content_words(fact)) for fact in ctx.verified_facts]
    shared = {word for word in set().union(*fact_words) if sum(word in found for found in fact_words) > 1}
    for match in DATE.finditer(reply):
        key, head = date_key(match), _date_head(reply, match.start())
        holding = [number for number, keys in enumerate(dates) if key in keys]
        if head is None or not holding:  # a date no source holds is check_facts' to reject
            continue
        others = set().union(*(words[number] for number, keys in enumerate(dates) if keys and key not in keys))
        if not any(head in words[number] - others - shared for number in holding):
            return f"says a date of something else ({head!r} on {match.group(0)!r})"
    return None


def first_unsupported(pattern: re.Pattern, text: str, ctx: CheckContext) -> Optional[str]:
    """The first match of pattern in text that the sources do not support, if any."""
    return next((match.group(0) for match in pattern.finditer(text) if not ctx.supports(match.group(0))), None)


def check_names(reply: str, ctx: CheckContext) -> Optional[str]:
    """Capitalised words inside a sentence (places, people, brands, carriers) must be in the sources."""
    allowed = {word.lower() for word in re.findall(r"[A-Za-z][\w'-]*", ctx.shop_name)} | ctx.extra_names
    for sentence in sentences(reply):
        words = re.findall(r"[A-Za-z][\w'-]*", sentence)
        for word in words[1:]:
            if word[0].isupper() and word != "I" and not word.startswith("I'") and word.lower() not in allowed:
                if not re.search(rf"\b{re.escape(word.lower())}\b", ctx.source_lower):
                    return f"unsupported name {word!r}"
    return None


def check_order_details(reply: str, ctx: CheckContext) -> Optional[str]:
    """Nothing about the customer's order unless this conversation verified it."""
    if ctx.verified:
        return None
    match = ORDER_DETAIL.search(reply)
    if match and not ctx.supports(match.group(0)):
        return f"order details without verification ({match.group(0)!r})"
    return None


def check_promises(reply: str, ctx: CheckContext) -> Optional[str]:
    """No promise, offer or action the passages do not make."""
    claim = ACTION_CLAIM.search(reply)
    if claim:
        return f"claims an action it cannot take ({claim.group(0)!r})"
    for kind, pattern in [*(("promise", term) for term in PROMISE_TERMS), ("generalisation", GENERALISATION)]:
        found = first_unsupported(pattern, reply, ctx)
        if found:
            return f"unsupported {kind} {found!r}"
    for sentence in sentences(reply):
        if COMMITMENT.search(sentence):
            missing = [word for word in content_words(sentence)
                       if word not in ctx.source_words and word not in COURTESY]
            if missing:
                return f"unsupported commitment ({', '.join(sorted(set(missing))[:3])} not in the passages)"
    return None


def _closest_clauses(clause: str, ctx: CheckContext) -> Tuple[List[str], float]:
    """The passage clauses sharing the largest part of `clause`'s content words (ties: all of them)."""
    words = set(content_words(clause)) - COURTESY
    best: List[str] = []
    best_overlap = 0.0
    for candidate in ctx.source_clauses:
        overlap = len(words & set(content_words(candidate))) / max(1, len(words))
        if overlap > best_overlap:
            best, best_overlap = [candidate], overlap
        elif overlap == best_overlap and best:
            best.append(candidate)
    return best, best_overlap


def answer_word(reply: str) -> Tuple[Optional[str], str]:
    """A leading "Yes," or "No," (the answer to a yes/no question) and the rest of the reply."""
    match = LEADING_ANSWER.match(reply)
    return (match.group(1).lower(), reply[match.end():]) if match else (None, reply)


def check_contradiction(reply: str, ctx: CheckContext) -> Optional[str]:
    """A clause that says "not" where the passage clause it repeats does not (or the other way round): the small
    model's favourite mistake ("No, you cannot return it" from "Yes, opening the box is fine"). When clauses of
    both polarities match equally well, the reply's cannot be told right, so it counts as contradicting. A leading
    Yes/No answers the question and is judged by check_yes_no, not here."""
    for clause in clauses(answer_word(reply)[1]):
        closest, overlap = _closest_clauses(clause, ctx)
        negated = bool(NEGATION.search(clause))
        conflicting = [candidate for candidate in closest if bool(NEGATION.search(candidate)) != negated]
        if overlap >= 0.5 and conflicting:
            return f"contradicts the passage ({clause[:60]!r} vs {conflicting[0][:60]!r})"
    return None


def check_yes_no(reply: str, ctx: CheckContext) -> Optional[str]:
    """"No" to what a passage clause states outright, or "Yes" to what it rules out: judged only when one clause
    holds every content word of the question ("do you ship to Norway?" against "We ship within the EU, the UK,
    Norway and Switzerland"), since a question about something the passage does not name is answered by
    what it leaves out ("do you ship to Canada?": No)."""
    answer, _ = answer_word(reply)
    if not answer or not YES_NO_QUESTION.match(ctx.question or ""):
        return None
    words = set(content_words(ctx.question)) - COURTESY
    closest, overlap = _closest_clauses(ctx.question, ctx)
    polarities = {bool(NEGATION.search(clause)) for clause in closest}
    if len(words) < 2 or overlap < 1.0 or len(polarities) != 1:
        return None
    if (answer == "no") != polarities.pop():
        return f"answers {answer!r} where the passage says {closest[0][:60]!r}"
    return None


def settle_answer_word(reply: str, question: str) -> str:
    """The reply without a leading "Yes," or "No," that its own first clause contradicts: "Yes, an order cannot be
    changed" and "No, we accept Visa, ... PayPal" (to "does PayPal work?") say the opposite of what they state, and
    the statement, which the checks verify against the passage, is the answer. A "No" stays unless its clause names
    (a capitalised name) what was asked: "do you ship to Canada?" -> "No, we ship within the EU, ..." is right."""
    answer, rest = answer_word(reply)
    parts = clauses(rest)
    if not answer or not parts:
        return reply
    negated = bool(NEGATION.search(parts[0]))
    if answer == "yes":
        contradicted = negated
    else:
        names = set(content_words(" ".join(NAME.findall(parts[0]))))
        contradicted = not negated and bool(names & set(content_words(question)))
    return rest[0].upper() + rest[1:] if contradicted else reply


def check_answers_the_question(reply: str, ctx: CheckContext, share: float = 0.34) -> Optional[str]:
    """A true sentence about something else is a wrong answer ("how much is express?" -> "Standard shipping costs
    4.95"): the reply must give the figure of the passage sentence closest to the question, and share a third of its
    words. The tuned model's most frequent mistake; the passage, which holds the right sentence, goes instead."""
    if not ctx.focus:
        return None
    missed = _answers_the_order_fact(reply, ctx) if ctx.focus in ctx.verified_facts \
        else _misses(reply, ctx.focus, share)
    if missed:
        return missed
    # "what should I check, and can I pay some other way?": both halves; "when will I see the money for the
    # cancelled order?": the order's fact and the passage's refund time
    for part in ctx.other_parts:
        if _misses(reply, part, share, besides=ctx.focus):
            return f"answers only part of the question (not {part[:60]!r})"
    return None


def _misses(reply: str, focus: str, share: float, besides: str = "") -> Optional[str]:
    """Whether `reply` leaves out `focus`: its figure, or a third of its words (those `besides` does not say too:
    the second half of a question is answered by what its sentence adds to the first's)."""
    figures = numbers_in(focus) - numbers_in(besides)
    if figures:  # the figure is the answer; its words may be left out ("It costs 12.95.")
        return None if figures & numbers_in(reply) else f"misses the figure asked about ({focus[:60]!r})"
    words = set(content_words(focus)) - COURTESY - set(content_words(besides))
    said = set(content_words(answer_word(reply)[1]))
    if words and len(words & said) / len(words) < share:
        return f"answers something else than {focus[:60]!r}"
    return None


def _answers_the_order_fact(reply: str, ctx: CheckContext) -> Optional[str]:
    """About a verified order, the answer is the fact closest to the question: the reply must say something only
    that fact says (its carrier, its date, its tracking number, "shipped"), since every fact shares the order
    number and many share a month ("placed on 26 November" answers "when did it ship?" wrongly)."""
    def said(text: str) -> Set[str]:  # words, figures, and ids with digits in them (tracking numbers)
        return set(content_words(text)) | numbers_in(text) | {token.lower() for token in ID_TOKEN.findall(text)}

    others = set().union(*(said(fact) for fact in ctx.verified_facts if fact != ctx.focus))
    own = said(ctx.focus) - others - said(ctx.question)
    if own and not own & said(reply):
        return f"answers something else than {ctx.focus[:60]!r}"
    return None


def check_grounded(reply: str, ctx: CheckContext, share: float = 0.75) -> Optional[str]:
    """Most content words of the reply come from the passages (or name what the customer asked about)."""
    words = [word for word in content_words(reply) if word not in COURTESY]
    if not words:
        return None
    asked = set(content_words(ctx.customer_text))
    known = [word for word in words if word in ctx.source_words or word in asked]
    if len(known) / len(words) < share:
        unknown = sorted({word for word in words if word not in ctx.source_words and word not in asked})
        return f"not grounded in the passages ({', '.join(unknown[:4])})"
    return None


def check_informative(reply: str, ctx: CheckContext) -> Optional[str]:
    """The reply tells the customer something from the passages, not only their own words or courtesies; asked
    for a figure (how long, how much, when) or a contact detail (an email address, a website), it gives one when
    the passages have one."""
    asked = set(content_words(ctx.customer_text))
    new = [word for word in content_words(reply) if word in ctx.source_words and word not in asked
           and word not in COURTESY]
    answers_yes_or_no = bool(YES_NO_QUESTION.match(ctx.question) and YES_NO_ANSWER.match(reply))
    if not new and not answers_yes_or_no and not (numbers_in(reply) & ctx.source_numbers):
        return "tells nothing from the passages"
    if QUANTITY_QUESTION.search(ctx.question) and ctx.source_numbers and not numbers_in(reply):
        return "a figure was asked for and the reply gives none"
    for what, (question, detail) in CONTACT_QUESTION.items():
        if question.search(ctx.question) and detail.search(ctx.source_text) and not detail.search(reply):
            return f"{what} was asked for and the reply gives none"
    return None


CHECKS: List[Check] = [
    check_not_empty, check_length, check_role_markers, check_markup, check_echoed_instructions, check_repetition,
    check_facts, check_dates_said_of, check_names, check_order_details, check_promises, check_contradiction,
    check_yes_no, check_answers_the_question, check_grounded,
    check_informative,
]


def failed_checks(reply: str, ctx: CheckContext) -> List[str]:
    """The reasons `reply` must not be sent; empty when it passes every check."""
    return [reason for check in CHECKS if (reason := check(reply, ctx))]

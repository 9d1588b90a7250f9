"""Tasks that count: histogram, count of a token, count of larger tokens, fraction of 'x' so far,
deduplication, spam detection."""

from __future__ import annotations

from tracr.rasp import rasp

from interpflow.circuits.tasks.base import Task
from interpflow.circuits.tasks.common import numerical_flag, numerical_mean

LETTERS = ("a", "b", "c")
DIGITS = (0, 1, 2, 3, 4)
SPAM_WORDS = frozenset({"free", "offer", "click", "now"})
WORDS = ("click", "free", "hello", "meeting", "now", "offer", "report", "team")


def _histogram() -> rasp.SOp:
    same = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ).named("same_token")
    return rasp.SelectorWidth(same).named("histogram")


def _count_a() -> rasp.SOp:
    is_a = rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "a").named("key_is_a")
    return rasp.SelectorWidth(is_a).named("count_a")


def _count_greater() -> rasp.SOp:
    greater = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.GT).named("key_greater")
    return rasp.SelectorWidth(greater).named("count_greater")


def _frac_prevs() -> rasp.SOp:
    is_x = numerical_flag(rasp.tokens, lambda t: t == "x", "is_x")
    so_far = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("so_far")
    return numerical_mean(so_far, is_x, "frac_prevs")


def _dedupe() -> rasp.SOp:
    # A (token, position) key lets one selector ask "same token, earlier position".
    key = rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices).named("token_position")
    earlier_same = rasp.Select(key, key, lambda k, q: k[0] == q[0] and k[1] < q[1]).named("earlier_same")
    seen = rasp.SelectorWidth(earlier_same).named("times_seen")
    return rasp.SequenceMap(lambda t, n: t if n == 0 else "_", rasp.tokens, seen).named("dedupe")


def _spam() -> rasp.SOp:
    keyword = numerical_flag(rasp.tokens, lambda w: w in SPAM_WORDS, "is_keyword")
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE).named("everything")
    share = numerical_mean(everything, keyword, "keyword_share")
    return rasp.Map(lambda s: "spam" if s > 0 else "ham", share).named("spam")


TASKS = (
    Task("histogram", "How many times each position's token occurs in the input.", LETTERS, 5, True, _histogram),
    Task("count_a", "How many 'a' the input holds, at every position.", LETTERS, 5, True, _count_a),
    Task("count_greater", "How many tokens are larger than each position's token.", DIGITS, 5, True,
         _count_greater),
    Task("frac_prevs", "The fraction of 'x' among the tokens up to each position.", LETTERS[:2] + ("x",), 5,
         False, _frac_prevs),
    Task("dedupe", "Each token at its first occurrence, '_' where it repeats an earlier one.", LETTERS, 5, True,
         _dedupe),
    Task("spam", "'spam' at every position when any word is a spam keyword, else 'ham'.", WORDS, 3, True, _spam),
)

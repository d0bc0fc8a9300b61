"""Peer selection for gossip fan-out and indirect-probe helpers, biased toward near peers.

Rules (`choose_peers`; `choose_helpers` is the same with the probe target excluded):
- the result holds min(k, available) distinct candidates (candidates are distinct names),
  in random order; the only randomness is the injected `random.Random`;
- bias == 0: a uniform sample without replacement (`choose_peers` returns `rng.sample`);
- bias in (0, 1]:
  * uniform share: u = k * uniform_share picks are uniform over the candidates, with u
    rounded at random to floor or ceil so that E[u] = k * uniform_share exactly. So at
    least floor(k * share) picks are uniform, and with k = 1 a pick is uniform with
    probability `uniform_share` (a third of the time by default);
  * the other k - u picks are tournament winners: draw m candidates uniformly, with
    replacement, among those not picked yet, and keep the one with the lowest estimated
    RTT (ties: the first drawn). m = max_tournament ** bias, rounded at random the same
    way, so bias 0 gives m = 1 (uniform) and bias 1 gives m = max_tournament. A winner's
    rank quantile q (0 = nearest) has density m (1 - q)^(m - 1): the typical pick lies in
    the nearest 1/(m + 1) of the candidates. The rule is rank based: it does not depend
    on the unit or scale of RTTs, and an outlier estimate cannot dominate;
  * an unknown RTT (`rtt_of` gives None, NaN, inf or a negative value) scores as the
    median of the known RTTs among a uniform pilot sample of PILOT_SIZE candidates and the
    tournament's known entrants: an unknown peer neither attracts nor repels picks. When
    no entrant's RTT is known the pick is uniform;
  * `known` (choose_excluding): the candidates whose RTT the caller can estimate, given
    when it holds enough of them. Entrants are then drawn among these (uniformly, with
    replacement, skipping excluded and picked names), so a node that holds the coordinates
    of a few dozen of thousands of members still finds the near ones among them: drawn
    among all candidates, a tournament would rarely meet a single known entrant. With
    every candidate known, the draws are the same as without. The uniform share never
    depends on it. When no known name is left to draw, entrants come from all candidates;
- cost: O(k * max_tournament + PILOT_SIZE) draws and `rtt_of` calls per call, independent
  of the number of candidates (and of `known`); candidates are never copied or sorted (a
  sparse Fisher-Yates pool draws and removes positions in O(1)).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Container, Sequence
from typing import cast

from swimnet.errors import ConfigError

RttOf = Callable[[str], float | None]

DEFAULT_UNIFORM_SHARE = 1.0 / 3.0
DEFAULT_MAX_TOURNAMENT = 32
"""Tournament size at bias 1: the typical biased pick is in the nearest ~3%."""
PILOT_SIZE = 15
"""Candidates sampled to estimate the median RTT given to peers whose RTT is unknown."""
KNOWN_TRIES = 4
"""Draws per wanted entrant among the known names before giving up on them."""


def choose_peers(
    candidates: Sequence[str],
    k: int,
    rng: random.Random,
    rtt_of: RttOf,
    bias: float,
    uniform_share: float = DEFAULT_UNIFORM_SHARE,
    *,
    max_tournament: int = DEFAULT_MAX_TOURNAMENT,
) -> list[str]:
    """Up to k distinct candidates: a uniform share plus picks biased toward low RTT."""
    _check(k, bias, uniform_share, max_tournament)
    want = min(k, len(candidates))
    if want == 0:
        return []
    if bias == 0.0:
        return rng.sample(candidates, want)
    return _choose(candidates, want, rng, rtt_of, bias, uniform_share, max_tournament, ())


def choose_helpers(
    candidates: Sequence[str],
    k: int,
    rng: random.Random,
    rtt_of: RttOf,
    bias: float,
    target: str,
    uniform_share: float = DEFAULT_UNIFORM_SHARE,
    *,
    max_tournament: int = DEFAULT_MAX_TOURNAMENT,
) -> list[str]:
    """Up to k distinct indirect-probe helpers, never `target` itself."""
    _check(k, bias, uniform_share, max_tournament)
    want = min(k, len(candidates))
    if want == 0:
        return []
    if bias == 0.0:
        # a uniform (k+1)-sample minus the target, cut to k, is a uniform k-sample of the
        # others (sample order is random, so any prefix is itself a uniform sample)
        drawn = rng.sample(candidates, min(want + 1, len(candidates)))
        return [c for c in drawn if c != target][:want]
    return _choose(candidates, want, rng, rtt_of, bias, uniform_share, max_tournament, (target,))


def _check(k: int, bias: float, uniform_share: float, max_tournament: int) -> None:
    if k < 0:
        raise ConfigError("k", f"must be >= 0, got {k}")
    if not 0.0 <= bias <= 1.0:
        raise ConfigError("bias", f"must be in [0, 1], got {bias!r}")
    if not 0.0 <= uniform_share <= 1.0:
        raise ConfigError("uniform_share", f"must be in [0, 1], got {uniform_share!r}")
    if max_tournament < 1:
        raise ConfigError("max_tournament", f"must be >= 1, got {max_tournament}")


def random_round(x: float, rng: random.Random) -> int:
    """floor(x) or ceil(x), the latter with probability frac(x): the mean is exactly x."""
    nearest = round(x)
    if abs(x - nearest) < 1e-9:  # 3 * (1/3) and friends: no draw, no float noise
        return int(nearest)
    low = math.floor(x)
    return low + 1 if rng.random() < x - low else low


class _Pool:
    """Positions 0..n-1 of a virtual array (sparse Fisher-Yates); [taken, n) are available.

    Only moved entries are stored, so creating a pool and each draw or removal are O(1).
    Draws use int(random() * count) rather than randrange: several times faster, with a
    bias (at most count / 2**53) far below anything a sample could show.
    """

    __slots__ = ("_at", "_n", "_taken", "_where")

    def __init__(self, n: int) -> None:
        self._n = n
        self._taken = 0
        self._at: dict[int, int] = {}  # position -> index, where they differ
        self._where: dict[int, int] = {}  # index -> position, where they differ

    @property
    def available(self) -> int:
        return self._n - self._taken

    def draw(self, rng: random.Random, count: int) -> list[int]:
        """`count` uniformly random available indices, with replacement (they stay available)."""
        taken, last, at, rand = self._taken, self._n - 1, self._at, rng.random
        span = self._n - taken
        positions = [min(taken + int(rand() * span), last) for _ in range(count)]
        return [at.get(pos, pos) for pos in positions]

    def is_available(self, index: int) -> bool:
        return self._where.get(index, index) >= self._taken

    def remove(self, index: int) -> None:
        """Make an available index unavailable: swap it to the front and advance."""
        pos = self._where.get(index, index)
        front = self._taken
        other = self._at.get(front, front)
        self._at[pos], self._where[other] = other, pos
        self._at[front], self._where[index] = index, front
        self._taken += 1


class _Tournaments:
    """The state of one call: the pool of candidates not picked yet, and the pilot sample."""

    def __init__(
        self,
        candidates: Sequence[str],
        rng: random.Random,
        rtt_of: RttOf,
        exclude: Container[str],
        known: Sequence[str] = (),
    ) -> None:
        self.candidates = candidates
        self.rng = rng
        self.rtt_of = rtt_of
        self.exclude = exclude
        self.known = known
        self.pool = _Pool(len(candidates))
        self.pilot: list[float] | None = None
        self.picked: set[str] = set()
        """Names taken by this call (a pick from `known` leaves the pool when drawn there)."""

    def draw(self, count: int) -> list[int]:
        """`count` uniform draws, with replacement, among available non-excluded indices.

        Fewer only when none is left. Excluded or picked indices met on the way leave the pool.
        """
        pool, candidates, exclude, picked = self.pool, self.candidates, self.exclude, self.picked
        drawn: list[int] = []
        while len(drawn) < count and pool.available:
            for index in pool.draw(self.rng, count - len(drawn)):
                name = candidates[index]
                if name not in exclude and name not in picked:
                    drawn.append(index)
                elif pool.is_available(index):
                    pool.remove(index)
        return drawn

    def draw_known(self, count: int) -> list[str]:
        """`count` uniform draws, with replacement, among known names neither excluded nor
        picked; fewer when KNOWN_TRIES * count draws found fewer."""
        known, exclude, picked, rand = self.known, self.exclude, self.picked, self.rng.random
        n = len(known)
        drawn: list[str] = []
        for _ in range(KNOWN_TRIES * count if n else 0):
            name = known[min(int(rand() * n), n - 1)]
            if name not in exclude and name not in picked:
                drawn.append(name)
                if len(drawn) == count:
                    break
        return drawn

    def take(self, index: int) -> str:
        self.pool.remove(index)
        name = self.candidates[index]
        self.picked.add(name)
        return name

    def uniform(self) -> str | None:
        drawn = self.draw(1)
        return self.take(drawn[0]) if drawn else None

    def nearest_of(self, m: int) -> str | None:
        """The winner of a tournament among m entrants (drawn among the known names if any)."""
        names = self.draw_known(m)
        if names:
            winner = names[self._winner(names)]
            self.picked.add(winner)
            return winner
        entrants = self.draw(m)
        if len(entrants) <= 1:
            return self.take(entrants[0]) if entrants else None
        return self.take(entrants[self._winner([self.candidates[i] for i in entrants])])

    def _winner(self, names: list[str]) -> int:
        """The position of the entrant with the lowest RTT (first among equals; the first
        when none is known)."""
        rtt_of = self.rtt_of
        rtts = [rtt_of(name) for name in names]
        if all(r is not None and 0.0 <= r < math.inf for r in rtts):
            scores = cast(list[float], rtts)  # all known: checked just above
        else:
            known = _usable(rtts)
            if not known:
                return 0
            fill = statistics.median(self.pilot_rtts() + known)
            scores = [r if r is not None and 0.0 <= r < math.inf else fill for r in rtts]
        return scores.index(min(scores))

    def pilot_rtts(self) -> list[float]:
        """Known RTTs of PILOT_SIZE uniformly drawn candidates (computed once per call)."""
        if self.pilot is None:
            n, rtt_of, candidates = len(self.candidates), self.rtt_of, self.candidates
            self.pilot = _usable([rtt_of(candidates[self.rng.randrange(n)]) for _ in range(PILOT_SIZE)])
        return self.pilot


def _usable(rtts: list[float | None]) -> list[float]:
    """The known RTTs: not None, finite, not negative."""
    return [r for r in rtts if r is not None and 0.0 <= r < math.inf]


def _choose(
    candidates: Sequence[str],
    want: int,
    rng: random.Random,
    rtt_of: RttOf,
    bias: float,
    uniform_share: float,
    max_tournament: int,
    exclude: Container[str],
    known: Sequence[str] = (),
) -> list[str]:
    state = _Tournaments(candidates, rng, rtt_of, exclude, known)
    n_uniform = random_round(want * uniform_share, rng)
    m = random_round(max_tournament**bias, rng)
    picks: list[str] = []
    for i in range(want):
        pick = state.uniform() if i < n_uniform else state.nearest_of(m)
        if pick is None:
            break
        picks.append(pick)
    rng.shuffle(picks)
    return picks


def choose_excluding(
    candidates: Sequence[str],
    k: int,
    rng: random.Random,
    rtt_of: RttOf,
    bias: float,
    exclude: Container[str],
    uniform_share: float = DEFAULT_UNIFORM_SHARE,
    *,
    max_tournament: int = DEFAULT_MAX_TOURNAMENT,
    known: Sequence[str] = (),
) -> list[str]:
    """`choose_peers` over the candidates not in `exclude` (a lazily evaluated container).

    For callers whose candidate list holds ineligible entries (e.g. a member list with dead
    members): exclusions are discovered as draws meet them, never by copying the list.
    `known` (see the module rules) must hold only candidates or names in `exclude`.
    """
    _check(k, bias, uniform_share, max_tournament)
    want = min(k, len(candidates))
    if want == 0:
        return []
    return _choose(candidates, want, rng, rtt_of, bias, uniform_share, max_tournament, exclude, known)

"""Fair share of the queues between users, and limits on what one user or session may queue.

Why: with one FIFO list per queue, one user's 3,000 sentences put another user's next job 3,000
jobs back (27.6 s for a first audio that takes 0.05 s alone). Here a worker takes, in turn, each
user's first waiting job, so a flood delays everyone else by about one job.

RQ's own lists stay whole: every waiting job is in `rq:queue:NAME`, in the order it came, so RQ,
rq-dashboard, KEDA and `/health` count and show what they always did, and RQ's `job.cancel()`
still takes a job out. Beside them, in keys of ours:

- a lane per (queue, user): the ids of the user's waiting jobs, in order;
- a ring per group of queues: the users with waiting jobs in the group, served in turn. `speech`
  and `realtime` form one group (a user's sentences go before its new work, but not before
  another user's new work), `batch` another, served only when the first is empty. The turn is
  start-time fair queuing: each user in the ring has a pass (the jobs it was given, counted
  from the group's clock), the claim serves the lowest (first come first among equals) and adds
  one; a user that becomes active joins at the pass of the job started last, or at its own
  remembered pass when that is later. So a user who was waiting for nothing goes before a
  flooder's next job, and a user cannot jump the turn by leaving and coming back;
- the owner of each job (user, session), and counters of each user's and session's queued jobs
  (the limits at enqueue) and sorted sets of their running ones (the caps at claim time).

The claim (`CLAIM`) stays one Lua call that moves a job id from its queue into the worker's
in-flight list (see voice_worker/inflight.py). A job that no lane holds is taken as soon as it is
at the head of its queue: one put back at the front for a dead worker at once, an RQ retry or a
requeue from rq-dashboard (at the back) in its turn. A lane entry whose job left the queue some
other way (cancelled by RQ itself) is skipped when the claim meets it, and stops counting then.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from shared_schemas import RETRY_AFTER_S, ErrorCode, JobPayload, ListenJob, PingJob, Refusal

from .settings import QueueSettings

# Shared by the scripts. ARGV[1] is always the key prefix.
_PRELUDE = """
local P = ARGV[1] .. ':fair:'
local function owner(id)
  local o = redis.call('HMGET', P .. 'job:' .. id, 'user', 'session')
  return o[1], o[2]
end
local function lanes_empty(names, user)
  for _, name in ipairs(names) do
    if redis.call('EXISTS', P .. name .. ':lane:' .. user) == 1 then return false end
  end
  return true
end
local function down(key)
  if redis.call('DECR', key) <= 0 then redis.call('DEL', key) end
end
local function left_lane(name, id, user, session)
  redis.call('SREM', P .. name .. ':laned', id)
  down(P .. 'queued:user:' .. user)
  if session then down(P .. 'queued:session:' .. session) end
end
-- The ring of a group: a sorted set of users, scored pass * SLOT + the order they joined in.
local SLOT = 1048576
local function ring_of(group) return P .. 'ring:' .. group end
local function leave(group, user, pass)
  redis.call('ZREM', ring_of(group), user)
  redis.call('HSET', P .. 'pass:' .. group, user, pass)
  redis.call('EXPIRE', P .. 'pass:' .. group, 86400)
end
"""

# ARGV: prefix, job id, user, session, queue name, "front" or "back", ttl, then the names of the
# queue's group. Puts a job (already in its RQ queue) in its user's lane.
LANE = (
    _PRELUDE
    + """
local id, user, session, name, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[7])
local group = {}
for i = 8, #ARGV do group[#group + 1] = ARGV[i] end
redis.call('HSET', P .. 'job:' .. id, 'user', user, 'session', session)
redis.call('EXPIRE', P .. 'job:' .. id, ttl)
local fresh = lanes_empty(group, user)
local lane = P .. name .. ':lane:' .. user
if ARGV[6] == 'front' then redis.call('LPUSH', lane, id) else redis.call('RPUSH', lane, id) end
redis.call('SADD', P .. name .. ':laned', id)
for _, key in ipairs({P .. 'queued:user:' .. user, P .. 'queued:session:' .. session}) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ttl)
end
if fresh then
  local g = group[1]
  local pass = math.max(tonumber(redis.call('HGET', P .. 'pass:' .. g, user) or '0'),
                        tonumber(redis.call('GET', P .. 'clock:' .. g) or '0'))
  local joined = redis.call('INCR', P .. 'joins:' .. g) % SLOT
  redis.call('ZADD', ring_of(g), pass * SLOT + joined, user)
end
return 1
"""
)

# ARGV: prefix, job id, queue name, then the names of its group. Takes a cancelled job out of its lane.
UNLANE = (
    _PRELUDE
    + """
local id, name = ARGV[2], ARGV[3]
local group = {}
for i = 4, #ARGV do group[#group + 1] = ARGV[i] end
local user, session = owner(id)
if not user then return 0 end
if redis.call('LREM', P .. name .. ':lane:' .. user, 1, id) == 0 then return 0 end
left_lane(name, id, user, session)
if lanes_empty(group, user) then
  local score = redis.call('ZSCORE', ring_of(group[1]), user)
  if score then leave(group[1], user, math.floor(tonumber(score) / SLOT)) end
end
return 1
"""
)

# KEYS[1]: a worker's in-flight list. ARGV: prefix, job id. The job left the list: it no longer runs.
DROP = (
    _PRELUDE
    + """
redis.call('LREM', KEYS[1], 1, ARGV[2])
local user, session = owner(ARGV[2])
if user then redis.call('ZREM', P .. 'running:user:' .. user, ARGV[2]) end
if session then redis.call('ZREM', P .. 'running:session:' .. session, ARGV[2]) end
return 1
"""
)

# KEYS[1]: the worker's in-flight list. ARGV: prefix, the running caps per user and per session
# (0: none), seconds after which a running mark is stale (its worker died unnoticed), then for each
# group of queues, in priority order: its size, then its queue names, each "+NAME" when this worker
# serves it, "-NAME" when not. Returns {queue key, job id}, or false when nothing may be taken.
CLAIM = (
    _PRELUDE
    + """
local me = KEYS[1]
local cap_user, cap_session, horizon = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function full(kind, name, cap)
  if cap <= 0 or not name then return false end
  local key = P .. 'running:' .. kind .. ':' .. name
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - horizon)
  return redis.call('ZCARD', key) >= cap
end

local function take(name, id)
  redis.call('RPUSH', me, id)
  local user, session = owner(id)
  if user then redis.call('ZADD', P .. 'running:user:' .. user, now, id) end
  if session then redis.call('ZADD', P .. 'running:session:' .. session, now, id) end
  return {'rq:queue:' .. name, id}
end

-- The user's first job in queue `name` that is still waiting; nil, true when its session is at its cap.
local function first(name, user)
  local lane = P .. name .. ':lane:' .. user
  while true do
    local id = redis.call('LINDEX', lane, 0)
    if not id then return nil end
    local _, session = owner(id)
    if full('session', session, cap_session) then return nil, true end
    redis.call('LPOP', lane)
    left_lane(name, id, user, session)
    if redis.call('LREM', 'rq:queue:' .. name, 1, id) == 1 then return id end
  end
end

local a = 5
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local names, served = {}, {}
  for j = 1, n do
    names[j] = string.sub(ARGV[a + j], 2)
    served[j] = string.sub(ARGV[a + j], 1, 1) == '+'
  end
  a = a + n + 1
  -- A job at the head of its queue that no lane holds goes first.
  for j = 1, n do
    if served[j] then
      local head = redis.call('LINDEX', 'rq:queue:' .. names[j], 0)
      if head and redis.call('SISMEMBER', P .. names[j] .. ':laned', head) == 0 then
        redis.call('LPOP', 'rq:queue:' .. names[j])
        return take(names[j], head)
      end
    end
  end
  -- Then the users with waiting jobs, lowest pass first: its first job of the first queue that has one.
  local g = names[1]
  local users = redis.call('ZRANGE', ring_of(g), 0, -1, 'WITHSCORES')
  local held = false
  for k = 1, #users, 2 do
    local user, score = users[k], tonumber(users[k + 1])
    local pass, joined = math.floor(score / SLOT), score % SLOT
    if full('user', user, cap_user) then
      held = true
    else
      for j = 1, n do
        if served[j] then
          local id, capped = first(names[j], user)
          if capped then held = true end
          if id then
            redis.call('SET', P .. 'clock:' .. g, pass)
            if lanes_empty(names, user) then
              leave(g, user, pass + 1)
            else
              redis.call('ZADD', ring_of(g), (pass + 1) * SLOT + joined, user)
            end
            return take(names[j], id)
          end
        end
      end
      if lanes_empty(names, user) then leave(g, user, pass) end
    end
  end
  -- Jobs left in a served queue that no lane leads to (it should not happen): oldest first,
  -- unless a cap holds them back.
  if not held then
    for j = 1, n do
      if served[j] then
        local id = redis.call('LPOP', 'rq:queue:' .. names[j])
        if id then return take(names[j], id) end
      end
    end
  end
end
return false
"""
)


class RateLimited(Refusal):
    """A user or session has as many jobs waiting as it may: nothing was enqueued.

    The app answers it as `rate_limited` (HTTP 429 with `Retry-After: retry_after_s`)."""

    code = ErrorCode.RATE_LIMITED  # retryable: once some of the jobs waiting have run
    status = 429

    def __init__(self, scope: str, name: str, waiting: int, limit: int) -> None:
        self.scope = scope  # "user" or "session"
        self.name = name
        self.limit = limit
        who = "You have" if scope == "user" else "This session has"
        super().__init__(
            f"{who} {waiting} jobs waiting in the queues; at most {limit} may wait at once, so nothing more "
            f"was queued. Try again in {RETRY_AFTER_S[self.code]} seconds, when some have run."
        )


def groups(settings: QueueSettings) -> tuple[tuple[str, ...], ...]:
    """The job queues in groups, in priority order: within a group users take turns."""
    return ((settings.speech_queue, settings.realtime_queue), (settings.llm_queue,), (settings.batch_queue,))


def group_of(settings: QueueSettings, queue: str) -> tuple[str, ...] | None:
    """The group of a job queue; None for a queue with no lanes (the listeners')."""
    return next((group for group in groups(settings) if queue in group), None)


def owner_of(payload: JobPayload) -> tuple[str, str]:
    return payload.user or "anonymous", payload.session_id


class FairShare:
    """The fair-share keys of one deployment: what clients write at enqueue, what workers claim with."""

    # The workers' scripts: the claim (ARGV from `claim_args`) and the drop of a job they finished.
    CLAIM: ClassVar[str] = CLAIM
    DROP: ClassVar[str] = DROP

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        # Owners and counters outlive any job that may still wait or run.
        self.ttl_s = settings.failure_ttl_s

    def queued_key(self, scope: str, name: str) -> str:
        return f"{self.prefix}:fair:queued:{scope}:{name}"

    def lane(self, pipe: Any, queue: str, job_id: str, user: str, session: str, front: bool = False) -> None:
        """Add to `pipe` (after the push onto RQ's list): the job joins its user's lane."""
        group = group_of(self.settings, queue)
        if group is None:
            return
        where = "front" if front else "back"
        pipe.eval(LANE, 0, self.prefix, job_id, user, session, queue, where, self.ttl_s, *group)

    def unlane_args(self, queue: str, job_id: str) -> list[Any] | None:
        group = group_of(self.settings, queue)
        return None if group is None else [self.prefix, job_id, queue, *group]

    # -- limits at enqueue ----------------------------------------------------------------------

    def asks(self, payloads: Iterable[tuple[JobPayload, str]]) -> list[tuple[str, str, int, int]]:
        """(counter key, scope, jobs asked, limit) for the jobs of `payloads` (each with its queue)
        that go to a queue with lanes, for each user and session with a limit. Only the work users
        ask for counts: pings (benchmarks, checks) are no user's to send."""
        users: Counter[str] = Counter()
        sessions: Counter[str] = Counter()
        for payload, queue in payloads:
            if isinstance(payload, ListenJob | PingJob) or group_of(self.settings, queue) is None:
                continue
            user, session = owner_of(payload)
            users[user] += 1
            sessions[session] += 1
        asked = []
        if self.settings.max_queued_per_user > 0:
            asked += [(self.queued_key("user", u), u, n, self.settings.max_queued_per_user) for u, n in users.items()]
        if self.settings.max_queued_per_session > 0:
            limit = self.settings.max_queued_per_session
            asked += [(self.queued_key("session", s), s, n, limit) for s, n in sessions.items()]
        return asked

    def check(self, asked: Sequence[tuple[str, str, int, int]], counts: Sequence[Any]) -> None:
        """Raise RateLimited when a user or session would have more jobs waiting than it may."""
        for (key, name, n, limit), raw in zip(asked, counts, strict=True):
            waiting = int(raw or 0)
            if waiting + n > limit:
                scope = "user" if ":queued:user:" in key else "session"
                raise RateLimited(scope, name, waiting, limit)

    # -- the claim ------------------------------------------------------------------------------

    def claim_args(self, served: Sequence[str]) -> list[Any]:
        """CLAIM's ARGV for a worker that takes jobs from the queues `served`."""
        s = self.settings
        horizon = max(s.transcribe_timeout_s, s.synthesize_timeout_s, s.generate_timeout_s) + 120
        args: list[Any] = [self.prefix, s.max_running_per_user, s.max_running_per_session, horizon]
        for group in groups(s):
            if not set(group) & set(served):
                continue
            args += [len(group), *(("+" if name in served else "-") + name for name in group)]
        return args

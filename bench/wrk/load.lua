-- wrk script for bench/collector_vs_nginx.py: replays pre-built raw HTTP requests, with a clean end.
--
-- Environment (read at load time, because wrk decides whether the script has delay() before init):
--   PL_REQUESTS   file of requests, each "<byte length>\n<raw HTTP/1.1 request>"
--   PL_MODE       "max"   : as fast as the connections go (closed loop, no delay());
--                 "paced" : a fixed request rate per wrk thread (open-ish loop, see delay() below)
--   PL_TRACK_S    seconds of tracking traffic; wrk's -d must be longer (the rest is the drain)
--   PL_THREAD_RPS paced mode: requests per second for each wrk thread
--
-- A clean end, so that the number of 2xx answers can be compared exactly with what the server
-- stored: after PL_TRACK_S no tracking request is sent any more. In "max" mode each connection then
-- asks for a path that answers 404 and is stored nowhere (wrk counts it under "Non-2xx"); in "paced"
-- mode delay() parks every connection for an hour. wrk's -d is PL_TRACK_S plus a drain of a few
-- seconds, so every tracking request sent has been answered when wrk stops, and
--   2xx answers = summary.requests - summary.errors.status = tracking requests answered.
--
-- done() prints one line "PLJSON {...}" for the Python driver.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pl_timespec;
int clock_gettime(int clk_id, pl_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("pl_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local mode = os.getenv("PL_MODE") or "max"
local track_ms = tonumber(os.getenv("PL_TRACK_S") or "10") * 1000
local thread_rps = tonumber(os.getenv("PL_THREAD_RPS") or "0")

-- Per-thread state (every wrk thread runs its own copy of this script). Globals, for thread:get().
issued = 0     -- tracking requests handed to wrk
drained = 0    -- drain requests (max mode)
late = 0       -- paced mode: sends more than 1 ms behind their slot in the schedule
max_lag_ms = 0 -- paced mode: the largest such lag

local reqs = {}
local n_reqs = 0
local cursor = 0
local deadline = nil
local drain_req = nil

local function load_requests(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
    pos = nl + 1 + len
  end
  n_reqs = #reqs
end

-- Main state only: the threads, so that done() can read their counters.
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  threads[thread_count] = thread
end

-- wrk calls request() once on thread 0's script before the run, only to check what it returns:
-- that call sends nothing and must not be counted.
local verify_call_pending = false

function init(args)
  verify_call_pending = (thread_index == 0)
  load_requests(os.getenv("PL_REQUESTS"))
  -- Threads start at different places in the request list, so they do not send the same events.
  cursor = math.floor((thread_index or 0) * n_reqs / 7) % n_reqs
  deadline = now_ms() + track_ms
  drain_req = wrk.format("GET", "/__bench_drain")
end

function request()
  if verify_call_pending then
    verify_call_pending = false
    return reqs[1]
  end
  if mode == "max" and now_ms() >= deadline then
    drained = drained + 1
    return drain_req
  end
  cursor = cursor + 1
  if cursor > n_reqs then cursor = 1 end
  issued = issued + 1
  return reqs[cursor]
end

if mode == "paced" then
  -- Open-ish loop: the thread keeps a schedule of send slots, one every 1000/PL_THREAD_RPS ms,
  -- and each connection that is free (its previous answer came back) takes the next slot and waits
  -- for it. Slots do not move when the server is slow: a connection that takes a slot already in
  -- the past sends at once, and that lateness is counted (late, max_lag_ms), so it shows when
  -- there were too few free connections to keep to the schedule (coordinated omission).
  local interval_ms = 1000 / thread_rps
  local next_slot = nil

  function delay()
    local now = now_ms()
    if next_slot == nil then next_slot = now end
    local slot = next_slot
    if slot >= deadline then
      return 3600 * 1000
    end
    next_slot = next_slot + interval_ms
    local wait = slot - now
    if wait < 0 then
      if -wait > 1 then
        late = late + 1
        if -wait > max_lag_ms then max_lag_ms = -wait end
      end
      return 0
    end
    return math.floor(wait)
  end
end

local function sum_threads(name)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get(name) or 0) end
  return total
end

local function max_threads(name)
  local best = 0
  for _, t in ipairs(threads) do
    local v = t:get(name) or 0
    if v > best then best = v end
  end
  return best
end

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {
    string.format('"mode":"%s"', mode),
    string.format('"duration_us":%d', summary.duration),
    string.format('"requests":%d', summary.requests),
    string.format('"bytes":%d', summary.bytes),
    string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
      e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"issued":%d', sum_threads("issued")),
    string.format('"drained":%d', sum_threads("drained")),
    string.format('"late":%d', sum_threads("late")),
    string.format('"max_lag_ms":%.3f', max_threads("max_lag_ms")),
    string.format('"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}',
      latency.min, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)),
  }
  io.write("PLJSON {" .. table.concat(parts, ",") .. "}\n")
end

-- wrk script: POST a distinct report per request, so that every request to the ingestion endpoint
-- is a new report ("created"), and print a JSON line of results at the end.
--
--   wrk -t2 -c16 -d15s --latency -s bench/report.lua http://127.0.0.1:8000 -- PATH TEMPLATE TAG
--
-- TEMPLATE is a report whose instance hash, report date and generation time are the placeholders
-- @@HASH@@, @@DATE@@ and @@GENERATED@@; TAG (two hex digits) keeps the instances of one scenario
-- apart from another's. Request n of a thread is from instance n % 64 for day n / 64: an instance's
-- next report is 64 requests later, so the same instance is never sent twice at once (no lock waits
-- that a real fleet would not have) and neighbouring days exist, as for real instances.

-- `id` and `statuses` are globals: setup() and done() reach them in each thread with set/get.
local threads = {}
local counter = 0
statuses = {}
id = 0
local pieces, path, tag
local base = os.time({year = 2021, month = 1, day = 1, hour = 12})

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function split(text)
  local out, rest = {}, text
  for _, mark in ipairs({"@@HASH@@", "@@DATE@@", "@@GENERATED@@"}) do
    local i, j = string.find(rest, mark, 1, true)
    assert(i, "placeholder " .. mark .. " missing (expected in this order)")
    table.insert(out, string.sub(rest, 1, i - 1))
    rest = string.sub(rest, j + 1)
  end
  table.insert(out, rest)
  return out
end

function init(args)
  path, tag = args[1], args[3]
  local f = assert(io.open(args[2], "rb"))
  pieces = split(f:read("*a"))
  f:close()
end

function request()
  local instance, day = counter % 64, math.floor(counter / 64)
  counter = counter + 1
  local hash = string.format("%s%02X%08X", tag, id, instance) .. string.rep("0", 52)
  local date = os.date("!%Y-%m-%d", base + day * 86400)
  local generated = os.date("!%Y-%m-%dT01:30:00.000000Z", base + (day + 1) * 86400)
  local body = pieces[1] .. hash .. pieces[2] .. date .. pieces[3] .. generated .. pieces[4]
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      codes[status] = (codes[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(codes) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f, ' ..
    '"max_ms": %.2f, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3,
    errors.connect + errors.read + errors.write + errors.timeout, table.concat(parts, ", ")))
end

-- wrk script: POST a distinct personalized offer id per request, so every request creates a
-- fulfillment. Ids come from the file in $BENCH_IDS, split between wrk threads.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  local n = 0
  local total = tonumber(os.getenv("BENCH_THREADS") or "2")
  for line in io.lines(os.getenv("BENCH_IDS")) do
    if n % total == index then table.insert(ids, line) end
    n = n + 1
  end
  -- every request must accept a personalized offer not accepted before: running out is an error
  wrap = false
  next_id = 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
  option = os.getenv("BENCH_OPTION") or "discount"
end

function request()
  local id = ids[next_id]
  next_id = next_id + 1
  if next_id > #ids then
    io.stderr:write("accept.lua: ran out of personalized offer ids\n")
    next_id = 1
  end
  local body = '{"personalized_offer_id":"' .. id .. '","option_id":"' .. option .. '"}'
  return wrk.format(nil, nil, nil, body)
end

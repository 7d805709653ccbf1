-- wrk script: personalized_offers for rotating customers, each with a bucket (custom.bucket)
-- that decides which offers are eligible in the "typical" catalog.
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
  customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "1000")
  path = os.getenv("BENCH_PATH")
  n = 0
end

function request()
  n = n + 1
  local i = (n % customers) + 1
  local body = '{"customer_id":"cus_' .. i .. '","subscription_id":"sub_' .. i ..
    '","custom":{"viewCount":' .. (n % 10) .. ',"bucket":' .. (i % 10) .. '}}'
  return wrk.format(nil, path, nil, body)
end

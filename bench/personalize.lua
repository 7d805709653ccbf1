-- wrk script: POST /api/v2/personalized_offers for rotating customers.
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
  customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "1000")
  n = 0
end

function request()
  n = n + 1
  local i = (n % customers) + 1
  local body = '{"customer_id":"cus_' .. i .. '","subscription_id":"sub_' .. i .. '","custom":{"viewCount":' .. (n % 10) .. '}}'
  return wrk.format(nil, nil, nil, body)
end

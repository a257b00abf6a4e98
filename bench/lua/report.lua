-- Sets the request headers from the environment and, at the end, prints one JSON
-- line for bench/run.py. The key comes from the environment rather than the
-- command line so that it does not show in the process list.
--
-- Non-2xx answers are wrk's own status error count (status >= 400): counting 2xx
-- in a response() callback would make wrk parse every answer in Lua, which costs
-- it a third of its speed and would cap the nginx baseline on one CPU. The targets
-- answer no 1xx or 3xx, and bench/run.py checks each with a real request first.

function init(args)
   local authorization = os.getenv("BENCH_AUTHORIZATION")
   if authorization ~= nil and authorization ~= "" then
      wrk.headers["Authorization"] = authorization
   end
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'BENCH-RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"non_2xx": %d, "latency_us": {"p50": %d, "p99": %d, "max": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      errors.status, latency:percentile(50), latency:percentile(99), latency.max
   ))
end

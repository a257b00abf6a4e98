-- Like report.lua, but each request carries the next key of a file (one value a
-- line), round robin, so that the gateway sees many clients instead of one.

dofile(os.getenv("BENCH_REPORT_LUA"))

local headers = {}
local keys = {}
local next_key = 0

function init(args)
   for line in io.lines(os.getenv("BENCH_KEYS_FILE")) do
      if line ~= "" then
         keys[#keys + 1] = "Bearer " .. line
      end
   end
   if #keys == 0 then
      error("no keys in " .. os.getenv("BENCH_KEYS_FILE"))
   end
end

function request()
   headers["Authorization"] = keys[next_key % #keys + 1]
   next_key = next_key + 1
   return wrk.format(nil, nil, headers)
end

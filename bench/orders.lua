-- Random orders shaped like the original producer's, each with a unique ORDER_ID.
-- Optional: `wrk ... -s orders.lua URL -- STRATEGY_A,STRATEGY_B NONCE` draws only from those
-- strategies (an empty first argument: all nine).
local strategies = {"STRATEGY_A","STRATEGY_B","STRATEGY_C","STRATEGY_D","STRATEGY_E",
                    "STRATEGY_F","STRATEGY_G","STRATEGY_H","STRATEGY_I"}
local instruments = {"ACC","ADANIENT","BIRLASOFT","COFORGE","DMART","EICHER","GRASIM",
                     "HINDALCO","INFY","JSW","L&T","MINDA","NTPC","POWERGRID"}
local sides = {"BUY", "SELL"}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  -- args[2], when given, makes the IDs unique across runs started within the same second.
  prefix = string.format("w%d-%d-%s-", id, os.time(), args[2] or "")
  n = 0
  if args[1] ~= nil and args[1] ~= "" then
    strategies = {}
    for name in string.gmatch(args[1], "[^,]+") do
      strategies[#strategies + 1] = name
    end
  end
end

request = function()
  n = n + 1
  local body = string.format(
    '{"STRATEGY":"%s","INSTRUMENT":"%s","POSITION":"%s","ORDER_ID":"%s%d"}',
    strategies[math.random(#strategies)], instruments[math.random(#instruments)],
    sides[math.random(2)], prefix, n)
  return wrk.format("POST", "/order", {["Content-Type"] = "application/json"}, body)
end

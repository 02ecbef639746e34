-- Random orders shaped like the original producer's, each with a unique ORDER_ID.
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
  prefix = string.format("w%d-%d-", id, os.time())
  n = 0
end

request = function()
  n = n + 1
  local body = string.format(
    '{"STRATEGY":"%s","INSTRUMENT":"%s","POSITION":"%s","ORDER_ID":"%s%d"}',
    strategies[math.random(#strategies)], instruments[math.random(#instruments)],
    sides[math.random(2)], prefix, n)
  return wrk.format("POST", "/order", {["Content-Type"] = "application/json"}, body)
end

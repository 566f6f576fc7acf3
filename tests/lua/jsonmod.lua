-- The json module: round trips and the documented lossy/edge cases. The
-- payload names the case; each returns a string for the test to compare.
local S = { sort_keys = true }
local cases = {}

cases.roundtrip = function()
  return json.encode(json.decode('{"a":[1,2.5,"x",true,false,null],"b":{},"c":[]}'), S)
end
cases.empty_table = function() return json.encode({}) end
cases.empty_array = function() return json.encode(json.array({})) end
cases.decoded_empty_array = function() return json.encode(json.decode("[]")) end
cases.null = function()
  return tostring(json.decode("null") == json.null) .. " " .. tostring(json.null) .. " " .. json.encode(json.null)
end
cases.sparse = function() return json.encode({ 1, nil, 3 }, S) end
cases.mixed = function() return json.encode({ 1, 2, x = 1 }, S) end
cases.numbers = function() return json.encode({ 1, 1.0, 1.5, math.maxinteger, -0.25 }) end
cases.number_types = function()
  return math.type(json.decode("1")) .. " " .. math.type(json.decode("1.0")) .. " " .. math.type(json.decode("1e2"))
end
cases.float_key = function() return json.encode({ [1.5] = "x" }) end
cases.nan = function() return json.encode(0 / 0) end
cases.inf = function() return json.encode({ x = math.huge }) end
cases.func = function() return json.encode({ f = print }) end
cases.bad_key = function() return json.encode({ [true] = 1 }) end
cases.cycle = function() local t = {} t.t = t return json.encode(t) end
cases.bad_utf8 = function() return json.encode("\255") end
cases.bad_utf8_key = function() return json.encode({ ["\255"] = 1 }) end
cases.nul = function() return json.encode("a\0b") .. " " .. #json.decode('"a\\u0000b"') end
cases.decode_error = function() return json.decode('{"a":') end
cases.big_int = function() return json.decode("12345678901234567890") end
cases.scalars = function() return json.decode('"s"') .. " " .. json.decode("1.5") .. " " .. tostring(json.decode("true")) end
cases.indent = function() return json.encode({ a = 1 }, { indent = 2 }) end
cases.deep = function() return json.decode(string.rep("[", 200) .. string.rep("]", 200)) end
cases.deep_ok = function() return json.encode(json.decode(string.rep("[", 100) .. string.rep("]", 100))) end
cases.unicode = function() return tostring(json.decode('"\\u00e9\\ud83d\\ude00"') == "é😀") .. " " .. json.encode("é") end
cases.array_has_mt = function() return json.array(setmetatable({}, {})) end
cases.array_marked_holes = function() local t = json.array({ 1 }) t[3] = 3 return json.encode(t) end
cases.escapes = function() return json.encode('q"\\/\n\t') end
cases.floats = function() return json.encode({ 0.1, 1e300, 2^53 }) end
cases.proxy = function() return json.encode(string) end

return { handle = function(task) return cases[task.payload]() end }

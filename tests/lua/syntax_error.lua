-- Hostile: a syntax error on line 3.
return {
  handle = function(task) local x = = 1 end,
}

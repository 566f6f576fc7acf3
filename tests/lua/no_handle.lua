-- Wrong shape: no handle function.
return { hello = function() end }

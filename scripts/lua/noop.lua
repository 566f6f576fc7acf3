-- noop: succeeds at once; the benchmark compares it with the native noop plugin.
return { handle = function() end }

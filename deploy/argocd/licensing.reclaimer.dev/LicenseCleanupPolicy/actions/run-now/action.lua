-- Asks the operator for one run now: it answers each new value of the run-now annotation once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["licensing.reclaimer.dev/run-now"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj

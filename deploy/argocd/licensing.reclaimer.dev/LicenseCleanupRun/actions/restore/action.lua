-- Asks the operator to give back every seat this run reclaimed: it answers each new value of the annotation once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["licensing.reclaimer.dev/restore"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj

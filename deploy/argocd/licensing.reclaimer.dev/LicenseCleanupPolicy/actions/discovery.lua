-- Actions on a LicenseCleanupPolicy: run it now.
local actions = {}
actions["run-now"] = {["disabled"] = obj.spec ~= nil and obj.spec.suspend == true}
return actions

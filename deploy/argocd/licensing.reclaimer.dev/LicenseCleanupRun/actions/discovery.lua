-- Actions on a LicenseCleanupRun: give back the seats it reclaimed (not a dry run's: it took nothing).
local actions = {}
actions["restore"] = {["disabled"] = obj.status == nil or obj.status.dryRun == true}
return actions

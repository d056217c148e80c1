-- Health of a LicenseCleanupRun (licensing.reclaimer.dev/v1alpha1): the record of one finished run.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the run's record"
  return hs
end
local message = obj.status.message or ""
if obj.status.restore ~= nil and obj.status.restore.result ~= nil and obj.status.restore.result ~= "Succeeded" then
  hs.status = "Degraded"
  hs.message = "restore " .. obj.status.restore.result .. ": " .. (obj.status.restore.message or "")
  return hs
end
if obj.status.result == "Succeeded" then
  hs.status = "Healthy"
else
  hs.status = "Degraded"
end
hs.message = (obj.status.result or "Unknown") .. ": " .. message
return hs

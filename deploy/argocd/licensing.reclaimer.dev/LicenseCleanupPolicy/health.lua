-- Health of a LicenseCleanupPolicy (licensing.reclaimer.dev/v1alpha1) from its kstatus conditions.
local hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the policy does not run"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to look at the policy"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to look at the latest change"
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  conditions[condition.type] = condition
end
local function said(condition)
  return condition.reason .. ": " .. (condition.message or "")
end
if conditions.Stalled ~= nil and conditions.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(conditions.Stalled)
  return hs
end
if conditions.Reconciling ~= nil and conditions.Reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = "a run is in progress"
  return hs
end
if conditions.Ready ~= nil then
  if conditions.Ready.status == "True" then
    hs.status = "Healthy"
  else
    hs.status = "Degraded"
  end
  hs.message = said(conditions.Ready)
  return hs
end
hs.status = "Progressing"
hs.message = "waiting for the operator to look at the policy"
return hs

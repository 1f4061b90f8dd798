
-- Reasons (operator/q_operator/engine/conditions.py) a user must act on: the operator stops retrying,
-- or retries slowly, until the spec, a permission, a quota or something outside changes.
local NEEDS_USER = {
  InvalidSpec = true, AwsValidationError = true, ReferenceNotFound = true, AdoptTargetNotFound = true,
  OwnedByAnother = true, AlreadyExists = true, AccessDenied = true, CredentialsInvalid = true,
  ServiceQuotaExceeded = true, DependencyNotFound = true, InUse = true, ExternalFailure = true,
  DeleteFailed = true, RegionMissing = true, BuildFailed = true, AwsError = true, InternalError = true,
  UpdateNotConverging = true, NoAWSIdentity = true, AssumeRoleFailed = true, AdoptionNotAllowed = true,
  AccountMismatch = true, AdoptIdRequired = true,
}
-- Reasons that clear by themselves: the operator is backing off and will try again.
local TRANSIENT = { Throttled = true, AwsServerError = true, AwsUnreachable = true, Conflict = true }
-- Ready=False reasons while AWS works on the resource.
local BUSY = { Creating = true, Updating = true, Replacing = true, Deleting = true }

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- The generation a condition speaks for: its own observedGeneration, else status.observedGeneration.
local function observed(c, status)
  if c ~= nil and c.observedGeneration ~= nil then
    return c.observedGeneration
  end
  return status.observedGeneration
end

local function describe(c)
  local text = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local hs = {}
local status = obj.status
local generation = obj.metadata.generation
local ready = condition(status, "Ready")
local synced = condition(status, "Synced")

-- Paused by the annotation q-operator.dev/paused (any value but "false" pauses, as in the operator):
-- the operator leaves it alone, its deletion included, until the annotation is removed.
local paused = nil
if obj.metadata.annotations ~= nil then
  paused = obj.metadata.annotations["q-operator.dev/paused"]
end
if paused ~= nil and paused ~= "false" then
  hs.status = "Suspended"
  if synced ~= nil and synced.reason == "Paused" then
    hs.message = describe(synced)
  else
    hs.message = "Paused by the annotation q-operator.dev/paused"
  end
  return hs
end
-- The pause was lifted and the operator has not reconciled since.
if synced ~= nil and synced.status == "False" and synced.reason == "Paused" then
  hs.status = "Progressing"
  hs.message = "Resuming after a pause"
  return hs
end

if ready == nil and synced == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile this resource"
  return hs
end

-- A failed reconcile for the current spec that a person has to fix.
if synced ~= nil and synced.status == "False" and NEEDS_USER[synced.reason]
    and (generation == nil or observed(synced, status) == generation) then
  hs.status = "Degraded"
  hs.message = describe(synced)
  return hs
end

-- An AWS build that failed: only a new spec starts another one.
if ready ~= nil and ready.status == "False" and ready.reason == "BuildFailed"
    and (generation == nil or observed(ready, status) == generation) then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting" .. DETAIL(status)
  return hs
end

if ready ~= nil and generation ~= nil and observed(ready, status) ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready) .. DETAIL(status)
  if synced ~= nil and synced.status == "False" then
    hs.message = hs.message .. " (last check: " .. describe(synced) .. ")"
  end
  return hs
end

if ready ~= nil and ready.status == "False" and BUSY[ready.reason] then
  hs.status = "Progressing"
  hs.message = describe(ready) .. DETAIL(status)
  if synced ~= nil and synced.status == "False" and TRANSIENT[synced.reason] then
    hs.message = hs.message .. " (retrying: " .. describe(synced) .. ")"
  end
  return hs
end

if synced ~= nil and synced.status == "False" and TRANSIENT[synced.reason] then
  hs.status = "Progressing"
  hs.message = "Retrying: " .. describe(synced)
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready) .. DETAIL(status)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to reconcile this resource"
return hs

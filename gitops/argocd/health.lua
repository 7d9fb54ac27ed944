-- Argo CD health for every Pitwall kind (group pitwall.dev): ApiProduct, Probe, Backend,
-- AlertRule and MaintenanceWindow. One script, registered once per kind in argocd-cm
-- (argocd-cm.yaml); written for Argo CD's Lua 5.1 (gopher-lua).
--
-- Stricter than kstatus (sigs.k8s.io/cli-utils status.Compute), which calls an object without
-- status, or one with Ready=False and no Reconciling=True, Current: here Ready decides.
--   no status yet, or status.observedGeneration < metadata.generation  -> Progressing
--   Stalled=True                                                        -> Degraded
--   Ready=True                                                          -> Healthy
--   anything else                                                       -> Progressing
-- then what each kind's domain conditions say, where Argo CD has a better word:
--   Probe       paused, or its target in a maintenance window -> Suspended; Down -> Degraded
--   Backend     in a maintenance window -> Suspended; health check failing -> Degraded
--   ApiProduct  in a maintenance window -> Suspended; rolled back to the last good image,
--               a failed rollout, or unavailable/degraded with no rollout under way -> Degraded
--   AlertRule, MaintenanceWindow: kstatus only (a firing alert is the rule working).

local function find(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is(c, value)
  return c ~= nil and c.status == value
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if text ~= "" then
      text = text .. ": "
    end
    text = text .. c.message
  end
  if text == "" then
    return fallback
  end
  return text
end

local function result(status, message)
  return {status = status, message = message}
end

local function assess(obj)
  local status = obj.status
  local spec = obj.spec or {}
  local generation = (obj.metadata or {}).generation

  if status == nil or status.conditions == nil then
    return result("Progressing", "Waiting for the Pitwall operator to report status")
  end
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return result("Progressing", "Waiting for the Pitwall operator to observe generation " .. tostring(generation))
  end

  local conditions = status.conditions
  local ready = find(conditions, "Ready")
  local stalled = find(conditions, "Stalled")
  local reconciling = find(conditions, "Reconciling")

  if is(stalled, "True") then
    return result("Degraded", describe(stalled, "Stalled"))
  end

  if obj.kind == "Probe" then
    local healthy = find(conditions, "Healthy")
    if spec.paused == true then
      return result("Suspended", "Probe is paused")
    end
    if is(healthy, "False") then
      return result("Degraded", describe(healthy, "Down"))
    end
    if healthy ~= nil and healthy.reason == "Maintenance" then
      return result("Suspended", describe(healthy, "Maintenance"))
    end
  elseif obj.kind == "Backend" then
    local available = find(conditions, "Available")
    if available ~= nil and available.reason == "Maintenance" then
      return result("Suspended", describe(available, "Maintenance"))
    end
    if is(available, "False") then
      return result("Degraded", describe(available, "Unavailable"))
    end
  elseif obj.kind == "ApiProduct" then
    local rolledBack = find(conditions, "RolledBack")
    local degraded = find(conditions, "Degraded")
    local available = find(conditions, "Available")
    local maintenance = find(conditions, "InMaintenance")
    if is(rolledBack, "True") then
      return result("Degraded", describe(rolledBack, "Rolled back"))
    end
    if is(maintenance, "True") then
      return result("Suspended", describe(maintenance, "In a maintenance window"))
    end
    if not is(reconciling, "True") then
      if is(degraded, "True") then
        return result("Degraded", describe(degraded, "Degraded"))
      end
      if is(available, "False") then
        return result("Degraded", describe(available, "Unavailable"))
      end
    end
  end

  if is(ready, "True") then
    return result("Healthy", describe(ready, "Ready"))
  end
  if is(reconciling, "True") then
    return result("Progressing", describe(reconciling, "Reconciling"))
  end
  return result("Progressing", describe(ready, "Waiting for Ready"))
end

return assess(obj)

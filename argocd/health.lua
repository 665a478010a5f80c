-- ArgoCD health check for renku.io/GlobalEnvironment (Lua 5.1, as ArgoCD runs it).
-- Install: argocd-cm key resource.customizations.health.renku.io_GlobalEnvironment
-- (argocd/argocd-cm.yaml holds this script in that form; a test keeps both equal).
--
--   Healthy      Ready=True, for the current metadata.generation.
--   Degraded     Ready=False with a reason only a human can resolve (bad spec, failed smoke test,
--                Renku refusing the environment, deletion blocked, ...).
--   Suspended    spec.suspend is true, the generation is observed and nothing needs a human.
--   Progressing  everything else: no Ready condition yet, Ready=Unknown, the current generation
--                not observed yet, or Ready=False for a transient reason the operator retries
--                (e.g. RenkuUnavailable).

-- Reasons of a False Ready that need a human; equal to NEEDS_HUMAN in
-- renku_env_operator/domain/conditions.py (a test compares them).
local NEEDS_HUMAN = {
  AdoptionFailed = true,
  AdoptionNotAllowed = true,
  DeletionNotAllowed = true,
  OwnershipConflict = true,
  RecoveryAmbiguous = true,
  CredentialsRejected = true,
  DeletionBlocked = true,
  MigrationRefused = true,
  Drifted = true,
  ImageCheckFailed = true,
  ImageNotFound = true,
  ImageNotPublic = true,
  Invalid = true,
  NoMatchingPlatform = true,
  NoTag = true,
  NonSemverTag = true,
  PoolPlatformMissing = true,
  LatestTag = true,
  InvalidImageReference = true,
  RegistryNotAllowed = true,
  RegistryResponseTooLarge = true,
  RejectedByRenku = true,
  RenkuCannotPull = true,
  RenkuNotConfigured = true,
  SmokeTestFailed = true,
}

local function find_ready(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local hs = {}
local status = obj.status
local ready = find_ready(status)
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition."
  return hs
end

-- Ready describes the current spec only once the operator has observed its generation.
local observed = ready.observedGeneration
if observed == nil and status ~= nil then
  observed = status.observedGeneration
end
local generation = obj.metadata.generation
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) .. "."
  return hs
end

hs.message = ready.message or ready.reason or ""
if ready.status == "False" and NEEDS_HUMAN[ready.reason] then
  hs.status = "Degraded"
elseif obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
elseif ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
return hs

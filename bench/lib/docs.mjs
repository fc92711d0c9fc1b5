// Deterministic, realistic PSON5 profile documents. The seeder and every row
// worker build the very same documents from (scenario, n), so no process has
// to ship them to another.
//
// Documents start from serialization-engine's createEmptyProfile (the local
// copy below when the upstream package is unavailable), so they pass the
// engine's validateProfile (the original adapter asserts it on save and load),
// and are then enriched with observed/inferred facts, cognitive and behavioral
// model entries, states, knowledge-graph nodes/edges and simulation scenarios
// until the JSON text reaches the scenario's target size.

export const SCENARIOS = {
  '1k': { name: '1k', label: '~1 KB documents', profiles: 10_000, profilesPerUser: 2, targetBytes: 1_024 },
  '20k': { name: '20k', label: '~20 KB documents', profiles: 2_000, profilesPerUser: 2, targetBytes: 21_500 },
}

export function scenarioShape(name, overrides = {}) {
  const base = SCENARIOS[name]
  if (!base) throw new Error(`unknown scenario '${name}' (known: ${Object.keys(SCENARIOS).join(', ')})`)
  const s = { ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) }
  s.users = Math.max(1, Math.ceil(s.profiles / s.profilesPerUser))
  return s
}

export const profileId = (n) => `pson_${n}`
export const userId = (u) => `user_${u}`
/** User number of profile n: profiles n, n + users, n + 2·users... belong to one user. */
export const userOf = (n, users) => ((n - 1) % users) + 1

// Same shape as @pson5/serialization-engine 0.2.2 createEmptyProfile.
function localEmptyProfile(input, now = new Date()) {
  const timestamp = now.toISOString()
  return {
    pson_version: '5.0',
    profile_id: `pson_${now.getTime()}`,
    user_id: input.user_id,
    tenant_id: input.tenant_id,
    consent: {
      granted: true,
      scopes: ['core:read', 'core:write', 'simulation:run', 'ai:use', 'ai:modeling', 'ai:simulation'],
      policy_version: '2026-04-22',
      updated_at: timestamp,
    },
    domains: { active: input.domains?.length ? input.domains : ['core'], depth: input.depth ?? 'light' },
    layers: { observed: {}, inferred: {}, simulated: {} },
    cognitive_model: { thinking_style: {}, learning_style: {}, processing_patterns: {} },
    behavioral_model: { decision_functions: [], action_patterns: [], motivation_model: {} },
    state_model: { states: [], transitions: [] },
    knowledge_graph: { nodes: [], edges: [] },
    simulation_profiles: { scenarios: [], domains: {} },
    privacy: { encryption: false, access_levels: {}, local_only: false, restricted_fields: [] },
    metadata: { confidence: 0, created_at: timestamp, updated_at: timestamp, source_count: 0, revision: 1 },
  }
}

function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DOMAINS = ['work', 'health', 'finance', 'learning', 'travel', 'social', 'shopping', 'media']
const ATTRIBUTES = ['preference', 'habit', 'goal', 'constraint', 'interest', 'schedule', 'budget', 'skill']
const VALUES = ['morning', 'evening', 'weekly', 'high', 'low', 'remote', 'hybrid', 'visual', 'concise', 'detailed']
const RELATIONS = ['prefers', 'avoids', 'works_with', 'interested_in', 'owns', 'visits']
const ACTIONS = ['recommend', 'defer', 'summarize', 'escalate', 'remind', 'compare']
const SOURCES = ['explicit', 'behavioral', 'imported', 'conversation']

const r3 = (x) => Math.round(x * 1000) / 1000
const pick = (rng, list) => list[Math.floor(rng() * list.length)]

/** Adds one enrichment item to the profile; returns roughly how many JSON characters it added. */
function addItem(profile, i, rng, at) {
  const domain = pick(rng, profile.domains.active)
  switch (i % 7) {
    case 0: {
      const key = `${domain}.${pick(rng, ATTRIBUTES)}_${i}`
      const fact = { value: pick(rng, VALUES), confidence: r3(0.5 + rng() / 2), source: pick(rng, SOURCES), observed_at: at }
      profile.layers.observed[key] = fact
      return key.length + JSON.stringify(fact).length + 4
    }
    case 1: {
      const key = `${domain}.trait_${i}`
      const trait = { value: r3(rng()), confidence: r3(rng()), evidence: [`obs_${i - 1}`, `obs_${i + 5}`] }
      profile.layers.inferred[key] = trait
      return key.length + JSON.stringify(trait).length + 4
    }
    case 2: {
      const node = { id: `n${i}`, type: pick(rng, ['entity', 'topic', 'place', 'person']), label: `${domain} ${pick(rng, VALUES)}` }
      const edge = { from: 'self', to: node.id, relation: pick(rng, RELATIONS), weight: r3(rng()) }
      profile.knowledge_graph.nodes.push(node)
      profile.knowledge_graph.edges.push(edge)
      return JSON.stringify(node).length + JSON.stringify(edge).length + 2
    }
    case 3: {
      const fn = {
        id: `df_${i}`,
        condition: `${domain}.${pick(rng, ATTRIBUTES)} == '${pick(rng, VALUES)}'`,
        action: pick(rng, ACTIONS),
        weight: r3(rng()),
      }
      profile.behavioral_model.decision_functions.push(fn)
      const key = `${domain}_${i}`
      profile.cognitive_model.processing_patterns[key] = r3(rng())
      return JSON.stringify(fn).length + key.length + 10
    }
    case 4: {
      const state = { id: `s${i}`, label: `${pick(rng, ['focused', 'busy', 'relaxed', 'travelling'])}`, likelihood: r3(rng()) }
      const transition = { from: `s${i}`, to: `s${i + 4}`, trigger: pick(rng, ['time', 'location', 'calendar']), probability: r3(rng()) }
      profile.state_model.states.push(state)
      profile.state_model.transitions.push(transition)
      return JSON.stringify(state).length + JSON.stringify(transition).length + 2
    }
    case 5: {
      const key = `${domain}_${i}`
      const weights = { cognitive: r3(rng()), motivation: r3(rng()) }
      profile.cognitive_model.thinking_style[key] = weights.cognitive
      profile.behavioral_model.motivation_model[key] = weights.motivation
      profile.simulation_profiles.domains[domain] = { enabled: true, horizon_days: 7 + Math.floor(rng() * 60) }
      return 2 * key.length + 60
    }
    default: {
      const scenario = { id: `sim_${i}`, domain, prediction: `${pick(rng, ACTIONS)} ${pick(rng, VALUES)}`, confidence: r3(rng()) }
      profile.simulation_profiles.scenarios.push(scenario)
      const pattern = { pattern: `${domain}_${pick(rng, VALUES)}`, frequency: Math.floor(rng() * 30) }
      profile.behavioral_model.action_patterns.push(pattern)
      return JSON.stringify(scenario).length + JSON.stringify(pattern).length + 2
    }
  }
}

/**
 * Profile n (1-based) of a scenario. `createEmptyProfile` is the engine's when
 * given (it must be the same in every process of a run).
 */
export function buildDocument(n, shape, createEmptyProfile = localEmptyProfile) {
  const rng = mulberry32(Math.imul(n, 2654435761) ^ shape.targetBytes)
  const u = userOf(n, shape.users)
  const created = new Date(Date.UTC(2025, 0, 1) + n * 61_000)
  const updated = new Date(created.getTime() + Math.floor(rng() * 90) * 86_400_000)
  const active = ['core', ...new Set([pick(rng, DOMAINS), pick(rng, DOMAINS)])]
  const profile = createEmptyProfile(
    { user_id: userId(u), tenant_id: `tenant_${(u % 25) + 1}`, domains: active, depth: pick(rng, ['light', 'standard', 'deep']) },
    created,
  )
  profile.profile_id = profileId(n)
  profile.metadata = {
    confidence: r3(0.3 + rng() * 0.6),
    created_at: created.toISOString(),
    updated_at: updated.toISOString(),
    source_count: 1 + Math.floor(rng() * 40),
    revision: 1,
  }
  const at = updated.toISOString()
  let size = JSON.stringify(profile).length
  for (let i = 0; size < shape.targetBytes; i++) size += addItem(profile, i, rng, at)
  return profile
}

/** All documents of a scenario, index n-1 holds profile n. */
export function buildDocuments(shape, createEmptyProfile) {
  const docs = new Array(shape.profiles)
  for (let n = 1; n <= shape.profiles; n++) docs[n - 1] = buildDocument(n, shape, createEmptyProfile)
  return docs
}

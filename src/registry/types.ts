/** One server of the fleet after `defaults` were applied: everything the deploy needs to know. */
export interface Server {
  name: string
  host: string
  tenant: string
  region?: string
  port: number
  user: string
  path: string
  healthUrl: string
  /**
   * Compose services a deploy restarts and health-checks. Empty: those that run now and take their image
   * from the image variable; where none runs yet, those of them with a restart policy (README: What a
   * deploy restarts).
   */
  services: string[]
  imageVariable: string
  /** Accepted host key fingerprints (`SHA256:…`), from the registry. */
  hostKeys: string[]
  enabled: boolean
  labels: Record<string, string>
  /** The jump host the server is reached through; undefined: directly. */
  jump?: JumpHost
}

/** A bastion (registry field `jump`) after defaults were applied. */
export interface JumpHost {
  host: string
  port: number
  /** The server's own user unless the registry names another. */
  user: string
  /** Accepted host key fingerprints of the jump host, from the registry. */
  hostKeys: string[]
}

export const SERVER_DEFAULTS = {
  port: 22,
  user: 'deploy',
  path: '/home/deploy/openclaw-prd',
  healthUrl: 'http://127.0.0.1:18789/health',
  imageVariable: 'OPENCLAW_IMAGE'
} as const

/** Every server of the fleet, in file order, `defaults` applied; disabled ones included. */
export interface Registry {
  /** Where the servers came from, as given (a file path, or the inputs for a single host). */
  file: string
  servers: Server[]
}

/**
 * Image references as Docker reads them (the grammar of github.com/distribution/reference, which the
 * Docker CLI uses): which registry a reference pulls from, and whether Docker would accept it at all.
 * One place for it, so the `image` input, the registry login and the docs agree.
 */

/** Where a reference with no registry part pulls from; `docker login docker.io` logs in there too. */
export const DOCKER_HUB = 'docker.io'
/** Docker's old name for Docker Hub, which it reads as DOCKER_HUB. */
const LEGACY_DOCKER_HUB = 'index.docker.io'
/** Docker's limit on the whole repository name, registry included (NameTotalLengthMax). */
const MAX_NAME_LENGTH = 255

// The grammar's pieces, as distribution/reference's regexp.go writes them.
const ALPHANUMERIC = '[a-z0-9]+'
const SEPARATOR = '(?:[._]|__|[-]+)'
const PATH_COMPONENT = `${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*`
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]'
const DOMAIN_AND_PORT = `(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?`
const TAG = '[\\w][\\w.-]{0,127}'
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}'
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`

const REGISTRY_RULE = new RegExp(`^${DOMAIN_AND_PORT}$`)
const REMAINDER_RULE = new RegExp(`^(${REMOTE_NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`)
/** A bare image ID: Docker refuses it as a reference to pull. */
const IMAGE_ID = /^[a-f0-9]{64}$/

export interface ImageReference {
  /** The registry it pulls from: `ghcr.io`, `10.200.0.1:5000`, `localhost`, or DOCKER_HUB. */
  registry: string
  /** The repository within it, e.g. `acme/openclaw`, or `library/ubuntu` on Docker Hub. */
  repository: string
  tag?: string
  digest?: string
}

/** Docker would not pull this reference; `message` says why, in the words Docker's rules use. */
export class InvalidImageReference extends Error {
  constructor(
    readonly reference: string,
    readonly reason: string
  ) {
    super(`${JSON.stringify(reference)} is not an image reference Docker accepts: ${reason}`)
    this.name = 'InvalidImageReference'
  }
}

/**
 * Splits a reference as `docker pull` does (ParseNormalizedNamed): the part before the first `/` is
 * a registry if it has a `.` or `:`, is `localhost`, or has an upper-case letter; otherwise the
 * reference is on Docker Hub (and a one-word name is under `library/`).
 */
export function parseImageReference(text: string): ImageReference {
  const invalid = (reason: string): never => {
    throw new InvalidImageReference(text, reason)
  }
  if (!text) invalid('it is empty')
  if (IMAGE_ID.test(text)) invalid('a 64-digit image ID is not a name to pull')
  const slash = text.indexOf('/')
  const first = slash === -1 ? '' : text.slice(0, slash)
  const hasRegistry = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)
  let registry = hasRegistry ? first : DOCKER_HUB
  let remainder = hasRegistry ? text.slice(slash + 1) : text
  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB
  if (registry === DOCKER_HUB && !remainder.includes('/')) remainder = `library/${remainder}`
  if (!REGISTRY_RULE.test(registry)) invalid(`${JSON.stringify(registry)} is not a registry (a host name or address, optionally with :port)`)
  const tagAt = remainder.indexOf(':')
  const name = tagAt === -1 ? remainder.replace(/@.*$/, '') : remainder.slice(0, tagAt)
  if (name.toLowerCase() !== name) invalid(`the repository name ${JSON.stringify(name)} must be lower-case`)
  const m = REMAINDER_RULE.exec(remainder)
  if (!m) {
    invalid(
      'expected [registry/]repository[:tag][@digest], the repository in lower-case letters, digits and separators (. _ __ -) between them, ' +
        'the tag at most 128 letters, digits, _ . -, the digest algorithm:hex (e.g. ghcr.io/acme/openclaw:1.4.2 or ghcr.io/acme/openclaw@sha256:…)'
    )
  }
  const [, repository, tag, digest] = m!
  if (`${registry}/${repository}`.length > MAX_NAME_LENGTH) invalid(`the repository name is longer than Docker's ${MAX_NAME_LENGTH} characters`)
  return { registry, repository: repository!, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) }
}

/** The registry a reference pulls from; undefined when Docker would not accept the reference. */
export function registryOf(reference: string): string | undefined {
  try {
    return parseImageReference(reference).registry
  } catch (error) {
    if (error instanceof InvalidImageReference) return undefined
    throw error
  }
}

/** True for what `docker login` takes as a registry: a host name, IPv4 or [IPv6] address, optionally with :port. */
export function isRegistryHost(text: string): boolean {
  return REGISTRY_RULE.test(text)
}

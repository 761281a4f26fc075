// The local Docker tags that keep each deployment's rollback image.
import { createHash } from 'node:crypto'
import type { Server } from '../registry/types.js'

/** Longest readable part of a rollback tag: with `-` and the hash the tag stays within Docker's 128. */
const ROLLBACK_TAG_READABLE = 100

/**
 * The local tag that keeps a project's rollback image: one per deployment folder. The folder's name
 * makes it readable; a hash of the whole path keeps `/srv/a_b` and `/srv/a/b` apart. A Docker tag is
 * `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
 */
export function rollbackTag(server: Server): string {
  const path = server.path.replace(/\/+$/, '') || '/'
  const hash = createHash('sha256').update(path).digest('hex').slice(0, 12)
  const readable = path
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .slice(-ROLLBACK_TAG_READABLE)
    .replace(/^[^A-Za-z0-9]+|_+$/g, '')
  return `openclaw-rollback:${readable || 'root'}-${hash}`
}

/**
 * The rollback tag earlier versions of this action used (`/srv/a_b` and `/srv/a/b` shared it). A
 * rollback record they wrote names it; prune drops it once it only holds an image no longer needed.
 */
export function legacyRollbackTag(server: Server): string {
  const name = server.path.replace(/^\/+|\/+$/g, '').replace(/[^A-Za-z0-9_.-]+/g, '_') || 'root'
  return `openclaw-rollback:${name.slice(-120)}`
}

/**
 * One server's work: connect → lock → preflight → (deploy | rollback | status) → unlock.
 * Every outcome becomes a ServerResult value; nothing here throws past `runServer`.
 */
import { createHash } from 'node:crypto'
import * as commands from '../remote/commands.js'
import type { RemoteCommand } from '../remote/commands.js'
import { ConnectError, ConnectionLost, type RemoteShell } from '../remote/ssh.js'
import { envValuesFor } from '../plan.js'
import { describeJump } from '../registry/load.js'
import type { Server } from '../registry/types.js'
import { GATEWAY_TOKEN, registryLoginFor, type Settings } from '../settings.js'
import { UserError } from '../errors.js'
import { rotateKey } from './key-rotation.js'
import type { ServerResult, Status } from './result.js'

/** What a server job needs from the run around it. */
export interface RunContext {
  settings: Settings
  /**
   * Opens the server's connection (real SSH, or a fake in unit tests), with `ssh-private-key`, or with
   * `key` (mode rotate-key logs in with the new key too: the same host key checks and jump route).
   */
  connect(server: Server, signal: AbortSignal, key?: { privateKey: string; passphrase: string }): Promise<RemoteShell>
  /** Written into the lock so others see who holds it; must contain `token=<lockToken>`. */
  lockHolder: string
  lockToken: string
  /** Describes this run in the history line (run URL, actor). */
  runLabel: string
  /** Aborted on SIGINT/SIGTERM: start nothing new, roll back what is half-switched. */
  signal: AbortSignal
  onProgress?(server: Server, state: string): void
}

/** A step exited non-zero: the server says why on its `error=` line or its output. */
class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly output: string,
    readonly code: number,
    readonly facts: Map<string, string[]>
  ) {
    super(message)
  }
}

class Cancelled extends Error {}

/** The lease ran out and another run took the lock over: this run must not touch the server again. */
class LockLost extends Error {}

/** One container of the project, as preflight reports it (see commands.preflight). */
interface Container {
  service: string
  configImage: string
  imageId: string
  state: string
}

/** What a rollback puts back: an image by its kept ID, and `.env` as this run found it. */
interface Restore {
  image: string
  imageId: string
  /** `.env` named another image than the one that ran: after restoring it, name the one that ran. */
  envFix?: boolean
  /** Set the image variable to `image` instead of restoring `.env` (mode: rollback going forward). */
  setImage?: string
  /** This run moved the rollback record (put it back after a restore). */
  record?: boolean
}

/** What preflight learnt of the project: what runs, and what a deploy switches. */
interface Project {
  /** The image variable's value in `.env`; undefined when `.env` has no such line. */
  envImage?: string
  /** The services a deploy (or rollback) moves to the new image and health-checks. */
  switched: string[]
  /** The image those services run now (what a rollback returns to); undefined when none ran. */
  currentImage?: string
  /** Its local ID, when a container of theirs exists. */
  currentImageId?: string
  /** The containers of the switched services that take their image from the variable. */
  containers: Container[]
  /** How many of the switched services take their image from the variable. */
  variableServices: number
}

const OUTPUT_TAIL_LINES = 20
/** A lock or unlock is quick; a server that cannot do it in this time is in trouble anyway. */
const QUICK_STEP_SECONDS = 30
/** Steps that change what runs: they hold the server's switch lock (see commands.exclusive). */
const SWITCHING_STEPS = new Set(['record', 'retag', 'write-env', 'restore-env', 'up', 'unrecord'])
/** The lock is waited for in rounds this long, so a cancel is noticed between them. */
const LOCK_ROUND_SECONDS = 2
/**
 * After a cancel, the restored image gets this long to be healthy: GitHub sends SIGKILL about 10 s
 * after SIGINT, and the lock must be released before that.
 */
const CANCELLED_HEALTH_SECONDS = 4

export async function runServer(server: Server, ctx: RunContext): Promise<ServerResult> {
  // (mode rotate-key: its own flow, in key-rotation.ts; it touches no project, so takes no deploy lock)
  if (ctx.settings.mode === 'rotate-key') return rotateKey(server, ctx)
  return new ServerJob(server, ctx).run()
}

class ServerJob {
  private readonly started = Date.now()
  private readonly result: ServerResult
  private shell?: RemoteShell
  /** Compose services whose containers the health check looks at (empty: all). */
  private healthServices: string[] = []
  /** Compose services a deploy or rollback restarts (see Project.switched). */
  private switched: string[] = []
  /** Set while this run holds the server's lock: every step renews its lease. */
  private holdsLock = false
  private holdsLockOnce = false
  /** Set once the server starts switching: what a rollback restores. */
  private switching?: Restore
  /** Set once this run may have changed what the server runs (even with nothing to restore). */
  private changing = false

  constructor(
    private readonly server: Server,
    private readonly ctx: RunContext
  ) {
    this.result = { server, status: 'failed', durationMs: 0, log: [] }
  }

  async run(): Promise<ServerResult> {
    try {
      if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled before this server started')
      this.progress('connecting')
      try {
        this.shell = await this.ctx.connect(this.server, this.ctx.signal)
      } catch (error) {
        if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled while connecting; nothing changed on this server')
        const kind = error instanceof ConnectError ? error.kind : 'network'
        return this.finish(kind === 'network' ? 'unreachable' : 'failed', errorText(error))
      }
      this.note(`connected to ${this.server.user}@${this.server.host}:${this.server.port}${this.server.jump ? ` through jump host ${describeJump(this.server.jump)}` : ''}`)
      if (this.ctx.settings.mode === 'status') return await this.status()
      return await this.locked(() => (this.ctx.settings.mode === 'rollback' ? this.rollbackToRecorded() : this.deploy()))
    } catch (error) {
      if (error instanceof Cancelled)
        return this.finish('skipped', `cancelled ${this.holdsLockOnce ? 'before any change on this server; its lock was released' : 'while waiting for the lock; nothing changed on this server'}`)
      if (error instanceof StepFailed) {
        this.result.failedStep = error.step
        this.result.failedOutput = error.output
      }
      const status: Status = error instanceof ConnectionLost ? 'unreachable' : 'failed'
      return this.finish(status, errorText(error))
    } finally {
      this.shell?.close()
    }
  }

  private async locked(work: () => Promise<ServerResult>): Promise<ServerResult> {
    const { settings, lockToken } = this.ctx
    this.progress('locking')
    try {
      const taken = await this.waitForLock()
      const previous = taken.get('took_over')?.[0]
      if (previous !== undefined) {
        const expired = this.fact(taken, 'expired_for', '')
        this.warn(`took over the deploy lock of ${previous.trim() || 'an unnamed holder'}${expired ? `, whose lease had expired ${expired}s ago` : ''} (that run was killed or lost the server)`)
      }
    } catch (error) {
      if (error instanceof StepFailed && error.code === commands.EXIT_CODE.lockHeld) {
        this.result.lockHolder = error.facts.get('holder')?.[0]?.trim()
        const expiresIn = this.fact(error.facts, 'expires_in', '')
        const expiry = expiresIn
          ? `; its lease ends in ${expiresIn}s unless that run renews it`
          : `; that lock has no expiry (taken by an older version of this action or by backup-openclaw.sh): remove ${commands.stateDir(this.server.path)}/lock by hand if no deploy runs`
        return this.finish('locked', `another deploy holds the lock (${this.result.lockHolder || 'holder unknown'}); waited ${settings.lockTimeout}s (lock-timeout)${expiry}`)
      }
      throw error
    }
    this.holdsLock = this.holdsLockOnce = true
    try {
      return await work()
    } catch (error) {
      if (error instanceof ConnectionLost && !this.ctx.signal.aborted) return await this.recover(error)
      throw error
    } finally {
      this.holdsLock = false
      await this.step(commands.releaseLock(this.server.path, lockToken), QUICK_STEP_SECONDS).catch(error => {
        this.note(`could not release the lock: ${errorText(error)}; remove ${commands.stateDir(this.server.path)}/lock by hand once no deploy runs`)
      })
    }
  }

  /**
   * Takes the lock, waiting up to lock-timeout in short rounds: a cancel ends the wait between two
   * rounds, and a round always finishes, so a lock taken just as the cancel came is known and released.
   */
  private async waitForLock(): Promise<Map<string, string[]>> {
    const deadline = Date.now() + this.ctx.settings.lockTimeout * 1000
    for (;;) {
      const wait = Math.min(LOCK_ROUND_SECONDS, Math.max(0, Math.ceil((deadline - Date.now()) / 1000)))
      try {
        return await this.step(commands.takeLock(this.server.path, this.ctx.lockHolder, wait), wait + QUICK_STEP_SECONDS)
      } catch (error) {
        if (!(error instanceof StepFailed && error.code === commands.EXIT_CODE.lockHeld) || Date.now() >= deadline) throw error
        this.checkCancelled()
      }
    }
  }

  private async preflight(): Promise<Project> {
    this.progress('preflight')
    return this.projectFrom(await this.step(commands.preflight(this.server.path, this.server.imageVariable), undefined, this.ctx.signal))
  }

  /**
   * What the preflight facts say. The image that runs is read from the containers, not from `.env`:
   * after a run killed between its `.env` write and `compose up`, `.env` names an image that never ran.
   */
  private projectFrom(facts: Map<string, string[]>): Project {
    const variable = this.server.imageVariable
    const services = (facts.get('service') ?? []).map(line => {
      const [name = '', uses = '', policy = ''] = line.split('|')
      return { name, usesVariable: uses === 'yes', restarts: policy !== '' && policy !== 'no' }
    })
    const containers = (facts.get('container') ?? []).map(line => {
      const [service = '', configImage = '', imageId = '', state = '', restarting = ''] = line.split('|')
      return { service, configImage, imageId, state: restarting === 'true' ? 'restarting' : state }
    })
    const compose = `${this.server.path}/${this.fact(facts, 'compose', 'docker-compose.yml')}`
    const fromVariable = services.filter(s => s.usesVariable).map(s => s.name)
    if (fromVariable.length === 0) {
      throw new UserError(
        `${compose} takes no service's image from \${${variable}}, so setting ${variable} in .env would change nothing: ` +
          `write image: \${${variable}:-…} in the gateway's service (as upstream's docker-compose.yml does), or set imageVariable in the registry to the variable it uses. Nothing was changed.`
      )
    }
    const listed = this.server.services
    const unknown = listed.filter(name => !services.some(s => s.name === name))
    if (unknown.length) {
      throw new UserError(`${compose} has no service ${unknown.join(', ')} (its services: ${services.map(s => s.name).join(', ') || 'none'}): fix "services" in the registry. Nothing was changed.`)
    }
    const live = (c: Container) => c.state === 'running' || c.state === 'restarting'
    const running = [...new Set(containers.filter(c => live(c) && fromVariable.includes(c.service)).map(c => c.service))]
    // What a deploy restarts: the listed services; else what runs now; on a server where nothing of
    // the project runs yet, the services meant to stay up (a restart policy: the gateway, not the CLI).
    const meantToRun = services.filter(s => s.usesVariable && s.restarts).map(s => s.name)
    const switched = listed.length ? listed : running.length ? running : meantToRun.length ? meantToRun : fromVariable
    // the image that runs is the one of a switched service whose image comes from the variable
    const ours = containers.filter(c => switched.includes(c.service) && fromVariable.includes(c.service))
    const now = ours.find(live) ?? ours[0]
    const envImage = facts.get('image_var')?.at(-1)
    this.switched = switched
    this.healthServices = switched
    if (now && envImage !== undefined && envImage !== now.configImage) {
      this.note(
        `.env names ${envImage}, but ${now.service} runs ${now.configImage} (an earlier deploy stopped between its .env write and the restart): ${now.configImage} is what a rollback returns to`
      )
    }
    const variableServices = switched.filter(name => fromVariable.includes(name)).length
    return { envImage, switched, currentImage: now?.configImage ?? envImage, currentImageId: now?.imageId, containers: ours, variableServices }
  }

  /**
   * `mode: deploy`, and `mode: rotate-token`, which is a deploy of the image that runs (no pull) with
   * a new gateway token: the image and the tenant's `.env` values change in one write, so a rollback
   * puts the whole change back.
   */
  private async deploy(): Promise<ServerResult> {
    const { settings } = this.ctx
    const rotating = settings.mode === 'rotate-token'
    const project = await this.preflight()
    const { currentImage, envImage } = project
    const variable = this.server.imageVariable
    const target = rotating ? (currentImage ?? envImage) : settings.image || envImage || currentImage
    if (!target) throw new UserError(`no image to deploy: the input "image" is empty and ${this.server.path}/.env has no ${variable}= line`)
    this.result.previousImage = currentImage
    this.checkCancelled()

    // What runs now, read before the pull: with a moving tag the pull re-points the reference.
    const runningId = await this.runningImageId(project, this.ctx.signal)
    this.result.previousImageId = runningId || undefined
    if (rotating && !runningId) throw new UserError(`no image of this project is on the server, so no gateway to give a new token: deploy one first. Nothing was changed.`)
    if (!rotating) this.progress('pulling')
    const login = rotating ? undefined : registryLoginFor(settings, target)
    const pull = login ? commands.pullImageWithLogin(target, login) : commands.pullImage(target)
    const targetId = rotating ? runningId : this.fact(await this.step(pull, undefined, this.ctx.signal), 'image_id')
    const envNames = envImage ?? currentImage
    const envValues = envValuesFor(this.server, settings)
    const sameImage = target === currentImage && envNames === target && this.runsOnly(project, targetId)
    if (sameImage && Object.keys(envValues).length === 0) return this.unchanged(target, targetId)
    this.checkCancelled()

    // Redeploying the image that runs keeps the earlier rollback target instead of recording itself.
    const record = runningId !== '' && runningId !== targetId
    if (record) {
      await this.step(commands.recordRollback(this.server.path, rollbackTag(this.server), { image: currentImage!, imageId: runningId }, targetId))
    } else if (!runningId) {
      this.note('no image of this project runs or is on the server yet: there is nothing to roll back to')
    }

    // From here on the server is being switched: a failure, a cancel or a lost connection rolls back.
    const restore: Restore | undefined = runningId && currentImage ? { image: currentImage, imageId: runningId, envFix: envImage !== undefined && envImage !== currentImage, record } : undefined
    this.switching = restore
    this.changing = true
    this.progress('switching')
    const values = envNames === target ? envValues : { [variable]: target, ...envValues }
    if (Object.keys(values).length) {
      const written = await this.step(commands.setEnvVariables(this.server.path, values, this.ctx.lockToken)).catch(async (error: unknown) => {
        // .env is replaced by a rename, so a failed write left it as it was: only the record moved.
        if (record && !(error instanceof ConnectionLost)) {
          await this.step(commands.restoreRollbackRecord(this.server.path)).catch(e => this.note(`rollback record not restored: ${errorText(e)}`))
        }
        throw error
      })
      const changed = this.fact(written, 'written', 'none')
        .split(' ')
        .filter(name => name !== 'none' && name !== variable)
      if (changed.length) this.result.changedVariables = changed
      else if (sameImage) {
        if (rotating) this.warn(`the ${GATEWAY_TOKEN} that tenant-env gives ${this.server.tenant} is the one its .env has already: nothing was rotated`)
        return this.unchanged(target, targetId, ' and .env already has these values')
      }
      if (Object.keys(envValues).length) this.note(`.env: ${changed.length ? `changed ${changed.join(', ')}` : 'no value of tenant-env changed'}`)
    }
    let healthy = false
    try {
      await this.step(commands.composeUp(this.server.path, this.switched, variable))
      this.progress('health check')
      healthy = await this.checkHealth(this.ctx.signal)
    } catch (error) {
      if ((error instanceof ConnectionLost && !this.ctx.signal.aborted) || error instanceof LockLost) throw error
      if (this.ctx.signal.aborted) this.note(`cancelled while switching (${errorText(error)}): restoring the previous image`)
      else {
        this.note(`switch failed: ${errorText(error)}`)
        this.rememberFailure(error)
      }
    }
    if (healthy) {
      this.result.deployedImage = target
      this.result.deployedImageId = targetId
      if (rotating)
        this.note(
          `token rotated: ${GATEWAY_TOKEN} ${GATEWAY_TOKEN in envValues && envValues[GATEWAY_TOKEN] !== commands.NEW_TOKEN ? 'from tenant-env' : 'made on the server, where it stays'}; the gateway is healthy with it`
        )
      if (settings.prune) await this.prune([targetId, runningId])
      await this.history('deployed', currentImage ?? '(none)', target)
      return this.finish('deployed')
    }

    const why = this.result.error ?? (this.ctx.signal.aborted ? 'cancelled during the deploy' : `${target} is not healthy`)
    if (!settings.rollback || !restore) {
      await this.history('failed', currentImage ?? '(none)', target)
      return this.finish('failed', `${why}; ${restore ? 'rollback is off' : 'no previous image to roll back to'}`)
    }
    this.progress('rolling back')
    const restored = await this.restore(restore)
    if (restored && record) await this.step(commands.restoreRollbackRecord(this.server.path)).catch(error => this.note(`rollback record not restored: ${errorText(error)}`))
    await this.history(restored ? 'rolled-back' : 'failed', target, restore.image)
    return restored ? this.finish('rolled-back', `${why}; restored ${restore.image}, which is healthy`) : this.finish('failed', `${why}; rollback to ${restore.image} did not become healthy either`)
  }

  private async unchanged(image: string, imageId: string, why = ''): Promise<ServerResult> {
    this.result.deployedImage = image
    this.result.deployedImageId = imageId
    this.note(`already running ${image} (${shortId(imageId)})${why}; nothing restarted`)
    await this.history('unchanged', image, image)
    return this.finish('unchanged')
  }

  /** Every switched service that takes the variable has a container, all running `imageId` (nothing to restart). */
  private runsOnly(project: Project, imageId: string): boolean {
    const services = new Set(project.containers.map(c => c.service))
    return services.size > 0 && [...services].length === project.variableServices && project.containers.every(c => c.imageId === imageId && c.state === 'running')
  }

  /**
   * The connection broke while we held the lock: reconnect once (within connect-timeout), put a
   * half-switched server back on its previous image, and let `locked` release the lock.
   */
  private async recover(lost: ConnectionLost): Promise<ServerResult> {
    this.note(`connection lost: ${lost.message}; reconnecting`)
    this.progress('reconnecting')
    this.shell?.close()
    try {
      this.shell = await this.ctx.connect(this.server, new AbortController().signal)
    } catch (error) {
      const state = this.changing ? `the server may be left half-switched to ${this.ctx.settings.image || 'the re-pulled image'}` : 'nothing had been changed yet'
      return this.finish('unreachable', `${lost.message}; could not reconnect (${errorText(error)}): ${state}, and its lock ${commands.stateDir(this.server.path)}/lock may remain`)
    }
    if (!this.switching) {
      // a first deploy (nothing ran before it) may have written .env or started containers already
      const state = this.changing ? `no image ran here before this deploy, so there is nothing to roll back to: check what runs there` : 'nothing had been changed on this server'
      return this.finish('unreachable', `${lost.message}; reconnected: ${state}`)
    }
    this.progress('rolling back')
    const restore = this.switching
    const restored = await this.restore(restore)
    if (restored && restore.record) await this.step(commands.restoreRollbackRecord(this.server.path)).catch(error => this.note(`rollback record not restored: ${errorText(error)}`))
    await this.history(restored ? 'rolled-back' : 'failed', this.ctx.settings.image || restore.image, restore.image)
    return this.finish(restored ? 'rolled-back' : 'failed', `${lost.message}; reconnected and ${restored ? `restored ${restore.image}, which is healthy` : `could not restore ${restore.image}`}`)
  }

  /**
   * `mode: rollback`: restore the image recorded before the last deploy. If that image is not
   * healthy, go back to the image that ran when the rollback started; the record stays as it is.
   */
  private async rollbackToRecorded(): Promise<ServerResult> {
    const project = await this.preflight()
    const { currentImage, envImage } = project
    this.result.previousImage = currentImage
    this.result.previousImageId = project.currentImageId
    const record = await this.step(commands.readRollbackRecord(this.server.path))
    const image = this.fact(record, 'image')
    const imageId = this.fact(record, 'image_id')
    if (image === currentImage && (envImage ?? currentImage) === image && this.runsOnly(project, imageId)) {
      this.result.deployedImage = image
      this.result.deployedImageId = imageId
      this.note(`already running the recorded image ${image} (${shortId(imageId)}); nothing restarted`)
      return this.finish('unchanged')
    }
    // What runs now, read before the restore re-points any tag: what we go back to if the recorded image fails.
    const runningId = await this.runningImageId(project)
    this.progress('rolling back')
    this.changing = true
    const setImage = (envImage ?? currentImage) === image ? undefined : image
    if (await this.restore({ image, imageId, setImage })) {
      await this.history('deployed', currentImage ?? '(none)', image)
      return this.finish('deployed')
    }
    const why = `${this.result.error ?? `${image} is not healthy`}; the recorded image ${image} did not become healthy`
    if (!this.ctx.settings.rollback || !runningId || !currentImage) {
      await this.history('failed', currentImage ?? '(none)', image)
      return this.finish('failed', `${why}; ${runningId ? `rollback is off, so ${currentImage} was not restored` : `no image ran before, so there is nothing to go back to`}`)
    }
    this.progress('going back')
    const back = await this.restore({ image: currentImage, imageId: runningId, envFix: envImage !== undefined && envImage !== currentImage })
    await this.history(back ? 'rolled-back' : 'failed', image, currentImage)
    return back
      ? this.finish('rolled-back', `${why}; went back to ${currentImage}, which ran before and is healthy; the rollback record is kept`)
      : this.finish('failed', `${why}; going back to ${currentImage}, which ran before, did not become healthy either`)
  }

  /** The ID of the image that runs now: the switched services' containers', else what the reference names ('' if nothing). */
  private async runningImageId(project: Project, signal?: AbortSignal): Promise<string> {
    if (project.currentImageId) return project.currentImageId
    if (!project.currentImage) return ''
    return this.fact(await this.step(commands.inspectImage(project.currentImage), undefined, signal), 'image_id', '')
  }

  /**
   * Puts `.env` back as this run found it (and, when it named an image that never ran, names the one
   * that did), points `image` at `imageId` (works with the registry down), restarts and checks health.
   * `setImage` instead sets the image variable to that image (mode: rollback's forward step).
   */
  private async restore(to: Restore): Promise<boolean> {
    const variable = this.server.imageVariable
    try {
      await this.step(commands.retagImage(to.imageId, to.image))
      if (to.setImage) {
        await this.step(commands.setEnvVariables(this.server.path, { [variable]: to.setImage }, this.ctx.lockToken))
      } else {
        const put = await this.step(commands.restoreEnvFile(this.server.path, this.ctx.lockToken))
        if (this.fact(put, 'restored', '') === 'yes') delete this.result.changedVariables
        if (to.envFix) await this.step(commands.setEnvVariables(this.server.path, { [variable]: to.image }, this.ctx.lockToken))
      }
      await this.step(commands.composeUp(this.server.path, this.switched, variable))
      // A cancelled run still checks the restored image, leaving it unchecked is worse, but briefly:
      // its lock must be released before the runner is killed.
      const { healthTimeout } = this.ctx.settings
      const healthy = await this.checkHealth(undefined, this.ctx.signal.aborted ? Math.min(healthTimeout, CANCELLED_HEALTH_SECONDS) : healthTimeout)
      if (healthy) {
        this.result.deployedImage = to.image
        this.result.deployedImageId = to.imageId
      }
      return healthy
    } catch (error) {
      if (error instanceof ConnectionLost || error instanceof LockLost) throw error
      this.note(`rollback failed: ${errorText(error)}`)
      this.rememberFailure(error)
      return false
    }
  }

  /** `mode: status`: preflight, state and one health probe in one remote command (one round trip). */
  private async status(): Promise<ServerResult> {
    const timeout = Math.min(this.ctx.settings.healthTimeout, 10)
    const command = commands.statusProbe(this.server.path, this.server.imageVariable, this.server.healthUrl, timeout, this.server.services)
    this.progress('preflight')
    const result = await this.shell!.run(command, this.ctx.settings.commandTimeout + timeout + QUICK_STEP_SECONDS)
    const facts = commands.parseFacts(result.stdout)
    if (!facts.has('stage')) throw this.failure({ ...command, step: 'preflight' }, result.code, result.stdout, result.stderr)
    this.note('preflight: ok')
    const project = this.projectFrom(facts)
    this.result.previousImage = this.result.deployedImage = project.currentImage
    this.result.previousImageId = this.result.deployedImageId = project.currentImageId
    this.result.lastDeploy = this.fact(facts, 'last', '') || undefined
    this.result.lockHolder = this.fact(facts, 'holder', '').trim() || undefined
    this.note(`containers: ${project.containers.map(c => `${c.service} ${c.state}`).join(', ') || 'none'}`)
    const healthy = this.healthFrom(command, result)
    return this.finish(healthy ? 'healthy' : 'unhealthy', healthy ? undefined : this.result.health)
  }

  private async checkHealth(signal?: AbortSignal, timeout = this.ctx.settings.healthTimeout, afterRestart = true): Promise<boolean> {
    const command = this.leased(commands.healthCheck(this.server.path, this.server.healthUrl, timeout, this.healthServices, afterRestart))
    const result = await this.shell!.run(command, timeout + QUICK_STEP_SECONDS, signal)
    this.checkLease(command, result)
    return this.healthFrom(command, result)
  }

  private healthFrom(command: RemoteCommand, result: { code: number; stdout: string; stderr: string }): boolean {
    const facts = commands.parseFacts(result.stdout)
    this.result.health = `HTTP ${this.fact(facts, 'http', '?')}; ${describeContainers(this.fact(facts, 'containers', ''))}`
    this.note(`health: ${result.code === 0 ? 'ok' : 'failed'} (${this.result.health})`)
    if (result.code !== 0) {
      const failure = this.failure(command, result.code, result.stdout, result.stderr)
      if (facts.has('containers')) failure.message += `; containers: ${describeContainers(this.fact(facts, 'containers'))}`
      this.rememberFailure(failure)
    }
    return result.code === 0
  }

  private async prune(keep: string[]): Promise<void> {
    this.progress('pruning')
    // A failed prune costs disk space, not the deploy: note it and go on.
    await this.step(commands.pruneImages(this.server.path, legacyRollbackTag(this.server), keep.filter(Boolean)))
      .then(facts => this.note(`pruned ${this.fact(facts, 'removed', '0')} image(s) this deployment no longer needs`))
      .catch(error => this.note(errorText(error))) // (the message names the step: "prune failed: …")
  }

  private async history(status: Status, from: string, to: string): Promise<void> {
    const line = [new Date().toISOString(), status, `${from} -> ${to}`, this.ctx.runLabel].join('\t')
    await this.step(commands.appendHistory(this.server.path, line)).catch(error => this.note(`history not written: ${errorText(error)}`))
  }

  /** Runs one step; a non-zero exit becomes StepFailed carrying the server's explanation. */
  private async step(command: RemoteCommand, timeout = this.ctx.settings.commandTimeout, signal?: AbortSignal): Promise<Map<string, string[]>> {
    if (SWITCHING_STEPS.has(command.step)) {
      command = commands.exclusive(this.server.path, command, timeout)
      timeout = commands.exclusiveTimeout(timeout)
    }
    command = this.leased(command)
    const result = await this.shell!.run(command, timeout, signal).catch((error: unknown) => {
      // Only steps that change nothing take the run's signal: cancelling them leaves the server as it was.
      throw signal?.aborted && error instanceof ConnectionLost ? new Cancelled() : error
    })
    this.checkLease(command, result)
    const facts = commands.parseFacts(result.stdout)
    if (result.code !== 0) throw this.failure(command, result.code, result.stdout, result.stderr)
    this.note(`${command.step}: ok`)
    return facts
  }

  /** While this run holds the lock, every step renews the lease first (see commands.withLease). */
  private leased(command: RemoteCommand): RemoteCommand {
    return this.holdsLock ? commands.withLease(this.server.path, this.ctx.lockToken, command) : command
  }

  private checkLease(command: RemoteCommand, result: { code: number; stdout: string }): void {
    if (!command.lease || result.code !== commands.EXIT_CODE.lockLost) return
    const holder = commands.parseFacts(result.stdout).get('lock_lost')?.at(-1)
    if (holder === undefined) return
    this.holdsLock = false
    const where = this.switching ? 'it may be left half-switched; the run that holds the lock now decides what runs there' : 'nothing had been changed on it'
    throw new LockLost(
      `${command.step}: this run lost the deploy lock of ${commands.stateDir(this.server.path)}/lock to ${holder.trim() || 'another run'} (the lease ran out, e.g. while the connection was down), so it stopped touching the server: ${where}`
    )
  }

  private failure(command: RemoteCommand, code: number, stdout: string, stderr: string): StepFailed {
    const facts = commands.parseFacts(stdout)
    const output = tail(`${stdout}\n${stderr}`)
    const reason = facts.get('error')?.at(-1) ?? (stderr.trim().split('\n').at(-1) || `exit code ${code}`)
    return new StepFailed(command.step, `${command.step} failed: ${reason}`, output, code, facts)
  }

  private rememberFailure(error: unknown): void {
    this.result.error ??= errorText(error)
    if (error instanceof StepFailed) {
      this.result.failedStep ??= error.step
      this.result.failedOutput ??= error.output
    }
  }

  private fact(facts: Map<string, string[]>, key: string, fallback?: string): string {
    const value = facts.get(key)?.at(-1)
    if (value !== undefined) return value
    if (fallback !== undefined) return fallback
    throw new Error(`the server's answer lacks "${key}"`)
  }

  private checkCancelled(): void {
    if (this.ctx.signal.aborted) throw new Cancelled()
  }

  private note(line: string): void {
    this.result.log.push(line)
  }

  private warn(line: string): void {
    this.note(`warning: ${line}`)
    ;(this.result.warnings ??= []).push(line)
  }

  private progress(state: string): void {
    this.note(`— ${state}`)
    this.ctx.onProgress?.(this.server, state)
  }

  private finish(status: Status, error?: string): ServerResult {
    this.result.status = status
    if (error) this.result.error = error
    else if (status === 'deployed' || status === 'unchanged' || status === 'healthy') delete this.result.error
    this.result.durationMs = Date.now() - this.started
    return this.result
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-OUTPUT_TAIL_LINES).join('\n')
}

/**
 * The health rule's words (`service:state:exit code:restarts:policy:ok|bad`, see commands.HEALTH_RULE)
 * for people: `openclaw-gateway running, openclaw-cli exited 0, worker restarting after 3 restarts (failing)`.
 */
export function describeContainers(raw: string): string {
  const words = raw
    .trim()
    .split(/\s+/)
    .filter(w => w && w !== 'none')
  if (words.length === 0) return 'no containers'
  return words
    .map(w => {
      const [service, state, exitCode, restarts, , verdict] = w.split(':')
      const exited = state === 'exited' ? ` ${exitCode}` : ''
      const restarted = restarts && restarts !== '0' ? ` after ${restarts} restart${restarts === '1' ? '' : 's'}` : ''
      return `${service} ${state}${exited}${restarted}${verdict === 'bad' ? ' (failing)' : ''}`
    })
    .join(', ')
}

export function shortId(imageId: string): string {
  return imageId.replace(/^sha256:/, '').slice(0, 12)
}

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

/**
 * One server's work, as a state machine: connect → lock + preflight → (deploy | rollback | status)
 * → (prune, history) + unlock. Every outcome becomes a ServerResult value; nothing here throws past
 * `runServer`. How a command reaches the server (channels, lease, switch lock) is steps.ts's job.
 *
 * Channels per server (each a round trip): a deploy takes lock+preflight, pull, record+write-env+up,
 * health, prune+history+unlock (5); a rollback after it adds retag+restore-env+up and health, and the
 * last one puts the rollback record back (7). Pull and health are channels of their own: a cancel
 * ends them at once.
 */
import { UserError } from '../errors.js'
import { envValuesFor } from '../plan.js'
import { describeJump } from '../registry/load.js'
import type { Server } from '../registry/types.js'
import * as commands from '../remote/commands.js'
import type { Part, RemoteCommand } from '../remote/commands.js'
import { ConnectError, ConnectionLost, type CommandResult } from '../remote/ssh.js'
import { GATEWAY_TOKEN, registryLoginFor } from '../settings.js'
import { describeContainers, shortId } from './describe.js'
import type { ServerResult, Status } from './result.js'
import { legacyRollbackTag, rollbackTag } from './rollback-tag.js'
import { rotateKey } from './key-rotation.js'
import type { RunContext } from './run-context.js'
import { ServerJob } from './server-job.js'
import { Cancelled, failure, LockLost, StepFailed, Steps, type Facts, type Ran } from './steps.js'

/** One container of the project, as preflight reports it (see commands.preflight). */
interface Container {
  service: string
  configImage: string
  imageId: string
  state: string
  /** Its restart policy (`no` when none). */
  policy: string
}

/** A step left to the end, to run with the unlock in the last channel; `done` reads how it went. */
interface Closing {
  part: Part
  done(ran: Ran | undefined, lost?: unknown): void
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
  /** Whether one of those containers runs now (else currentImage is what an exited one was made from). */
  running: boolean
}

/** A lock or unlock is quick; a server that cannot do it in this time is in trouble anyway. */
const QUICK_STEP_SECONDS = 30
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
  return new DeployJob(server, ctx).run()
}

class DeployJob extends ServerJob {
  private steps?: Steps
  /** Compose services whose containers the health check looks at (empty: all). */
  private healthServices: string[] = []
  /** Compose services a deploy or rollback restarts (see Project.switched). */
  private switched: string[] = []
  /** Set once this run has held the server's lock. */
  private holdsLockOnce = false
  /** What runs with the unlock, in order (see close). */
  private closing: Closing[] = []
  /** Set once the server starts switching: what a rollback restores. */
  private switching?: Restore
  /** Set once this run may have changed what the server runs (even with nothing to restore). */
  private changing = false
  /** Set when a lost connection could not be made again: the last channel does not try once more. */
  private unreachable = false

  async run(): Promise<ServerResult> {
    try {
      if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled before this server started')
      this.progress('connecting')
      try {
        const shell = await this.ctx.connect(this.server, this.ctx.signal)
        const where = () => (this.switching ? 'it may be left half-switched; the run that holds the lock now decides what runs there' : 'nothing had been changed on it')
        this.steps = new Steps(shell, this.server.path, this.ctx.lockToken, line => this.note(line), where)
      } catch (error) {
        if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled while connecting; nothing changed on this server')
        const kind = error instanceof ConnectError ? error.kind : 'network'
        return this.finish(kind === 'network' ? 'unreachable' : 'failed', errorText(error))
      }
      this.note(`connected to ${this.server.user}@${this.server.host}:${this.server.port}${this.server.jump ? ` through jump host ${describeJump(this.server.jump)}` : ''}`)
      if (this.ctx.settings.mode === 'status') return await this.status()
      const preflight = commands.preflight(this.server.path, this.server.imageVariable)
      if (this.ctx.settings.mode === 'rollback') return await this.locked([preflight, commands.readRollbackRecord(this.server.path)], ([pre, record]) => this.rollbackToRecorded(pre!, record!))
      return await this.locked([preflight], ([pre]) => this.deploy(pre!))
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
      this.steps?.shell.close()
    }
  }

  /**
   * Takes the lock and, in the same channel, runs `after` (preflight, …); `work` gets their facts.
   * Whatever happens then, the steps left to the end and the unlock run in one last channel.
   */
  private async locked(after: RemoteCommand[], work: (facts: Facts[]) => Promise<ServerResult>): Promise<ServerResult> {
    const { settings } = this.ctx
    this.progress(after.length ? 'locking, preflight' : 'locking')
    let ran: Ran[]
    try {
      ran = await this.waitForLock(after)
    } catch (error) {
      if (error instanceof StepFailed && error.code === commands.EXIT_CODE.lockHeld) {
        this.result.lockHolder = error.facts.get('holder')?.[0]?.trim()
        const expiresIn = this.fact(error.facts, 'expires_in', '')
        const expiry = expiresIn
          ? `; its lease ends in ${expiresIn}s unless that run renews it`
          : `; that lock has no expiry (taken by an older version of this action or of backup-openclaw.sh): remove ${commands.stateDir(this.server.path)}/lock by hand if no deploy runs`
        return this.finish('locked', `another deploy holds the lock (${this.result.lockHolder || 'holder unknown'}); waited ${settings.lockTimeout}s (lock-timeout)${expiry}`)
      }
      throw error
    }
    this.steps!.holdsLock = this.holdsLockOnce = true
    const previous = ran[0]!.facts.get('took_over')?.[0]
    if (previous !== undefined) {
      const expired = this.fact(ran[0]!.facts, 'expired_for', '')
      this.warn(`took over the deploy lock of ${previous.trim() || 'an unnamed holder'}${expired ? `, whose lease had expired ${expired}s ago` : ''} (that run was killed or lost the server)`)
    }
    try {
      const failed = ran.find(r => r.failure)
      if (failed) throw failed.failure
      return await work(ran.slice(1).map(r => r.facts))
    } catch (error) {
      if (error instanceof ConnectionLost && !this.ctx.signal.aborted) return await this.recover(error)
      throw error
    } finally {
      await this.close()
    }
  }

  /**
   * Takes the lock, waiting up to lock-timeout in short rounds: a cancel ends the wait between two
   * rounds, and a round always finishes, so a lock taken just as the cancel came is known and released.
   * Each round is one channel: the lock, then (once taken) the steps `after` it.
   */
  private async waitForLock(after: RemoteCommand[]): Promise<Ran[]> {
    const deadline = Date.now() + this.ctx.settings.lockTimeout * 1000
    for (;;) {
      const wait = Math.min(LOCK_ROUND_SECONDS, Math.max(0, Math.ceil((deadline - Date.now()) / 1000)))
      const rest = after.map(command => this.part(command))
      // (the lease taken covers the steps after it in the channel; the next channel renews it)
      const lock = commands.takeLock(this.server.path, this.ctx.lockHolder, wait, commands.leaseSeconds(rest.reduce((sum, part) => sum + part.seconds, 0)))
      const ran = await this.steps!.sequence([{ command: lock, seconds: wait + QUICK_STEP_SECONDS }, ...rest], 'failure', this.ctx.signal).catch(async (error: unknown) => {
        // cancelled in this channel: whether the lock was taken is not known, so release it if it is ours
        if (error instanceof Cancelled) await this.close()
        throw error
      })
      const taken = ran[0]
      if (!taken) throw new Error('the lock step did not start')
      if (!taken.failure) return ran
      if (taken.failure.code !== commands.EXIT_CODE.lockHeld || Date.now() >= deadline) throw taken.failure
      this.checkCancelled()
    }
  }

  /**
   * The steps left to the end (rollback record, prune, history) and the unlock, in one channel.
   * A connection lost in that channel is reconnected once and the channel sent again (unless the run
   * is cancelled: the post step releases the locks then), so a link that drops at the very end does
   * not leave the lock to keep the next deploy waiting until its lease runs out. Every step in it
   * may run twice: each one finds its work done (a history line already there is not written again).
   */
  private async close(): Promise<void> {
    const steps = this.steps!
    // (a run that lost the lock touches nothing more; the unlock only removes a lock that is its own)
    const closing = steps.holdsLock ? this.closing.splice(0) : []
    const lock = `${commands.stateDir(this.server.path)}/lock`
    const unlock = commands.releaseLock(this.server.path, this.ctx.lockToken)
    const released = (facts: Facts) => (this.holdsLockOnce ||= facts.get('released')?.at(-1) === 'yes')
    closing.push(this.closingStep(unlock, why => `could not release the lock: ${why}; remove ${lock} by hand once no deploy runs`, QUICK_STEP_SECONDS, released, 'warn'))
    try {
      const ran = await this.sendLast(
        closing.map(c => c.part),
        lock
      )
      if (ran) closing.forEach((c, i) => c.done(ran[i]))
    } catch (error) {
      for (const c of closing) c.done(undefined, error)
    } finally {
      steps.holdsLock = false
    }
  }

  /**
   * Sends the last channel; when its connection is lost, connects again and sends it once more (not
   * in a cancelled run, nor to a server just found unreachable). Undefined when, reconnected, the lock
   * is no longer this run's: nothing more is sent then.
   */
  private async sendLast(parts: Part[], lock: string): Promise<Ran[] | undefined> {
    const steps = this.steps!
    try {
      return await steps.sequence(parts, 'end')
    } catch (error) {
      if (!(error instanceof ConnectionLost) || this.ctx.signal.aborted || this.unreachable) throw error
      this.note(`connection lost in the last channel (${parts.map(p => p.command.step).join(', ')}): ${error.message}; reconnecting to send it again`)
      this.progress('reconnecting')
      await this.reconnect()
    }
    try {
      return await steps.sequence(parts, 'end')
    } catch (error) {
      if (!(error instanceof LockLost)) throw error
      // the lock is gone or another run's: the first channel's unlock ran (its answer was lost), or the lease ran out
      this.note(`reconnected: the lock ${lock} is no longer this run's (this run's unlock had run before the connection was lost, or its lease ran out), so the last steps were not sent again`)
      return undefined
    }
  }

  /** A new connection in place of one that was lost (not cancellable: what follows puts the server right). */
  private async reconnect(): Promise<void> {
    this.steps!.shell.close()
    this.steps!.shell = await this.ctx.connect(this.server, new AbortController().signal)
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
    const containers = containersFrom(facts)
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
    const running = [...new Set(containers.filter(c => live(c) && fromVariable.includes(c.service)).map(c => c.service))]
    // What a deploy restarts: the listed services; else what runs now; on a server where nothing of
    // the project runs yet, the services meant to stay up (a restart policy: the gateway, not the CLI).
    // With none such, nothing is started: an interactive tool (openclaw-cli) is not for `up -d`.
    const meantToRun = services.filter(s => s.usesVariable && s.restarts).map(s => s.name)
    if (!listed.length && !running.length && !meantToRun.length) {
      throw new UserError(
        `nothing of the project in ${this.server.path} runs yet, and the only services that take their image from \${${variable}} (${fromVariable.join(', ')}) have no restart policy, ` +
          `so none is meant to stay up (an interactive tool such as openclaw-cli is run with docker compose run): give the gateway restart: unless-stopped, ` +
          `or list the services to start in the registry's "services". Nothing was changed.`
      )
    }
    const switched = listed.length ? listed : running.length ? running : meantToRun
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
    return { envImage, switched, currentImage: now?.configImage ?? envImage, currentImageId: now?.imageId, containers: ours, variableServices, running: ours.some(live) }
  }

  /**
   * `mode: deploy`, and `mode: rotate-token`, which is a deploy of the image that runs (no pull) with
   * a new gateway token: the image and the tenant's `.env` values change in one write, so a rollback
   * puts the whole change back.
   */
  private async deploy(preflight: Facts): Promise<ServerResult> {
    const { settings } = this.ctx
    const rotating = settings.mode === 'rotate-token'
    const project = this.projectFrom(preflight)
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
    const targetId = rotating ? runningId : this.fact(await this.step(pull, this.ctx.signal), 'image_id')
    const envNames = envImage ?? currentImage
    const envValues = envValuesFor(this.server, settings)
    const sameImage = target === currentImage && envNames === target && this.runsOnly(project, targetId)
    if (sameImage && Object.keys(envValues).length === 0) return this.unchanged(target, targetId)
    this.checkCancelled()

    // One channel, under one hold of the switch lock: the rollback record, .env, compose up.
    // Redeploying the image that runs keeps the earlier rollback target instead of recording itself.
    const record = runningId !== '' && runningId !== targetId
    const parts: Part[] = []
    if (record) parts.push(this.part(commands.recordRollback(this.server.path, rollbackTag(this.server), { image: currentImage!, imageId: runningId }, targetId, this.ctx.lockToken)))
    else if (!runningId) this.note('no image of this project runs or is on the server yet: there is nothing to roll back to')
    const values = envNames === target ? envValues : { [variable]: target, ...envValues }
    // (with the image already in place, an unchanged .env ends the channel before compose up)
    if (Object.keys(values).length) parts.push(this.part(commands.setEnvVariables(this.server.path, values, this.ctx.lockToken, { stopIfUnchanged: sameImage })))
    parts.push(this.part(commands.composeUp(this.server.path, this.switched, variable)))

    // From here on the server is being switched: a failure, a cancel or a lost connection rolls back.
    const restore: Restore | undefined = runningId && currentImage ? { image: currentImage, imageId: runningId, envFix: envImage !== undefined && envImage !== currentImage, record } : undefined
    this.switching = restore
    this.changing = true
    this.progress('switching')
    let ran: Ran[]
    try {
      ran = await this.steps!.sequence(parts, 'failure')
    } catch (error) {
      // no part started (the switch lock was not had): nothing changed
      if (error instanceof StepFailed) this.switching = undefined
      throw error
    }
    const recorded = ran.find(r => r.step === 'record')
    if (recorded?.failure) {
      this.switching = undefined
      throw recorded.failure
    }
    const written = ran.find(r => r.step === 'write-env')
    if (written?.failure?.code === commands.EXIT_CODE.unchanged) {
      this.switching = undefined
      if (rotating) this.warn(`the ${GATEWAY_TOKEN} that tenant-env gives ${this.server.tenant} is the one its .env has already: nothing was rotated`)
      return this.unchanged(target, targetId, ' and .env already has these values')
    }
    if (written?.failure) {
      // .env is replaced by a rename, so a failed write left it as it was: only the record moved.
      this.switching = undefined
      if (record) this.atEnd(commands.restoreRollbackRecord(this.server.path, this.ctx.lockToken), 'rollback record not restored')
      throw written.failure
    }
    if (written) {
      // The server says which names it changed; only names this run sent count, each once, so a
      // server cannot grow its row (or the `results` output) with names of its own.
      const said = new Set(this.fact(written.facts, 'written', 'none').split(' '))
      const changed = Object.keys(envValues).filter(name => said.has(name))
      if (changed.length) this.result.changedVariables = changed
      if (Object.keys(envValues).length) this.note(`.env: ${changed.length ? `changed ${changed.join(', ')}` : 'no value of tenant-env changed'}`)
    }
    const up = ran.find(r => r.step === 'up')
    let healthy = false
    if (up?.failure) {
      this.note(`switch failed: ${errorText(up.failure)}`)
      this.rememberFailure(up.failure)
    } else {
      try {
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
    }
    if (healthy) {
      this.result.deployedImage = target
      this.result.deployedImageId = targetId
      if (rotating)
        this.note(
          `token rotated: ${GATEWAY_TOKEN} ${GATEWAY_TOKEN in envValues && envValues[GATEWAY_TOKEN] !== commands.NEW_TOKEN ? 'from tenant-env' : 'made on the server, where it stays'}; the gateway is healthy with it`
        )
      if (settings.prune) this.prune([targetId, runningId])
      // the old .env's copy was for a rollback, which a healthy deploy no longer needs
      if (Object.keys(values).length) this.atEnd(commands.forgetEnvCopy(this.server.path, this.ctx.lockToken), 'the copy of the old .env was not removed')
      this.history('deployed', currentImage ?? '(none)', target)
      return this.finish('deployed')
    }

    const why = this.result.error ?? (this.ctx.signal.aborted ? 'cancelled during the deploy' : `${target} is not healthy`)
    if (!restore) {
      // a first deploy: nothing to go back to, so what it started is stopped rather than left restarting
      const stopped = await this.stopStarted()
      this.history('failed', currentImage ?? '(none)', target)
      return this.finish('failed', `${why}; no previous image to roll back to: ${stopped}`)
    }
    if (!settings.rollback) {
      this.history('failed', currentImage ?? '(none)', target)
      return this.finish('failed', `${why}; rollback is off`)
    }
    this.progress('rolling back')
    const restored = await this.restore(restore)
    if (restored && record) this.atEnd(commands.restoreRollbackRecord(this.server.path, this.ctx.lockToken), 'rollback record not restored')
    this.history(restored ? 'rolled-back' : 'failed', target, restore.image)
    if (restored) return this.finish('rolled-back', `${why}; restored ${restore.image}, which is healthy`)
    // An image that did not run before this deploy (its container had exited, e.g. stopped after a
    // failed first deploy) is not left restarting either: the server is left as it was found.
    const stopped = project.running ? '' : `; ${restore.image} did not run before this deploy either: ${await this.stopStarted()}`
    return this.finish('failed', `${why}; rollback to ${restore.image} did not become healthy either${stopped}`)
  }

  private async unchanged(image: string, imageId: string, why = ''): Promise<ServerResult> {
    this.result.deployedImage = image
    this.result.deployedImageId = imageId
    this.note(`already running ${image} (${shortId(imageId)})${why}; nothing restarted`)
    this.history('unchanged', image, image)
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
    try {
      await this.reconnect()
    } catch (error) {
      this.unreachable = true
      const state = this.changing ? `the server may be left half-switched to ${this.ctx.settings.image || 'the re-pulled image'}` : 'nothing had been changed yet'
      return this.finish('unreachable', `${lost.message}; could not reconnect (${errorText(error)}): ${state}, and its lock ${commands.stateDir(this.server.path)}/lock may remain`)
    }
    if (!this.switching) {
      // a first deploy (nothing ran before it) may have written .env or started containers already:
      // what it started is stopped, as after a first deploy that is not healthy
      const state = this.changing ? `no image ran here before this deploy, so there is nothing to roll back to: ${await this.stopStarted()}` : 'nothing had been changed on this server'
      return this.finish('unreachable', `${lost.message}; reconnected: ${state}`)
    }
    this.progress('rolling back')
    const restore = this.switching
    const restored = await this.restore(restore)
    if (restored && restore.record) this.atEnd(commands.restoreRollbackRecord(this.server.path, this.ctx.lockToken), 'rollback record not restored')
    this.history(restored ? 'rolled-back' : 'failed', this.ctx.settings.image || restore.image, restore.image)
    return this.finish(restored ? 'rolled-back' : 'failed', `${lost.message}; reconnected and ${restored ? `restored ${restore.image}, which is healthy` : `could not restore ${restore.image}`}`)
  }

  /**
   * `mode: rollback`: restore the image recorded before the last deploy. If that image is not
   * healthy, go back to the image that ran when the rollback started; the record stays as it is.
   */
  private async rollbackToRecorded(preflight: Facts, record: Facts): Promise<ServerResult> {
    const project = this.projectFrom(preflight)
    const { currentImage, envImage } = project
    this.result.previousImage = currentImage
    this.result.previousImageId = project.currentImageId
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
      this.history('deployed', currentImage ?? '(none)', image)
      return this.finish('deployed')
    }
    const why = `${this.result.error ?? `${image} is not healthy`}; the recorded image ${image} did not become healthy`
    if (!runningId || !currentImage) {
      const stopped = await this.stopStarted()
      this.history('failed', currentImage ?? '(none)', image)
      return this.finish('failed', `${why}; no image ran before, so there is nothing to go back to: ${stopped}`)
    }
    if (!this.ctx.settings.rollback) {
      this.history('failed', currentImage, image)
      return this.finish('failed', `${why}; rollback is off, so ${currentImage} was not restored`)
    }
    this.progress('going back')
    const back = await this.restore({ image: currentImage, imageId: runningId, envFix: envImage !== undefined && envImage !== currentImage })
    this.history(back ? 'rolled-back' : 'failed', image, currentImage)
    return back
      ? this.finish('rolled-back', `${why}; went back to ${currentImage}, which ran before and is healthy; the rollback record is kept`)
      : this.finish('failed', `${why}; going back to ${currentImage}, which ran before, did not become healthy either`)
  }

  /**
   * After a deploy (or rollback) with no earlier image to go back to did not become healthy: stops
   * the services it started (`docker compose stop`), so none is left restarting. Returns how that
   * went, for the result's error. A lost connection or lock is the caller's, as in every switch.
   */
  private async stopStarted(): Promise<string> {
    const services = this.switched.join(', ')
    this.progress('stopping')
    try {
      await this.steps!.step(commands.composeStop(this.server.path, this.switched, this.server.imageVariable), this.ctx.settings.commandTimeout)
    } catch (error) {
      if (error instanceof ConnectionLost || error instanceof LockLost) throw error
      this.note(`could not stop ${services}: ${errorText(error)}`)
      this.rememberFailure(error)
      return `stopping ${services} failed too (${errorText(error)}), so it may be left restarting: check what runs there`
    }
    this.note(`stopped ${services}: nothing ran here before this deploy, so there is no image to go back to`)
    return `stopped ${services}, so nothing is left restarting (the containers and their logs stay)`
  }

  /** The ID of the image that runs now: the switched services' containers', else what the reference names ('' if nothing). */
  private async runningImageId(project: Project, signal?: AbortSignal): Promise<string> {
    if (project.currentImageId) return project.currentImageId
    if (!project.currentImage) return ''
    return this.fact(await this.step(commands.inspectImage(project.currentImage), signal), 'image_id', '')
  }

  /**
   * Puts `.env` back as this run found it (and, when it named an image that never ran, names the one
   * that did), points `image` at `imageId` (works with the registry down), restarts and checks health.
   * `setImage` instead sets the image variable to that image (mode: rollback's forward step). The
   * switch is one channel; the health check another.
   */
  private async restore(to: Restore): Promise<boolean> {
    const variable = this.server.imageVariable
    const path = this.server.path
    const token = this.ctx.lockToken
    const parts = [this.part(commands.retagImage(to.imageId, to.image))]
    if (to.setImage) parts.push(this.part(commands.setEnvVariables(path, { [variable]: to.setImage }, token)))
    else {
      parts.push(this.part(commands.restoreEnvFile(path, token)))
      if (to.envFix) parts.push(this.part(commands.setEnvVariables(path, { [variable]: to.image }, token)))
    }
    parts.push(this.part(commands.composeUp(path, this.switched, variable)))
    try {
      const ran = await this.steps!.sequence(parts, 'failure')
      if (
        ran
          .find(r => r.step === 'restore-env')
          ?.facts.get('restored')
          ?.at(-1) === 'yes'
      )
        delete this.result.changedVariables
      const failed = ran.find(r => r.failure)?.failure
      if (failed) throw failed
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

  /**
   * `mode: status`: the project's containers, its state files and one health probe in one command
   * (commands.statusProbe). What runs is read from the containers: the image of a running service
   * meant to stay up (a restart policy: the gateway, not the CLI), else of any that runs.
   */
  private async status(): Promise<ServerResult> {
    const command = commands.statusProbe(this.server.path, this.server.imageVariable, this.server.healthUrl, this.server.services)
    this.progress('preflight')
    const result = await this.steps!.exec(command, this.ctx.settings.commandTimeout + QUICK_STEP_SECONDS)
    const facts = commands.parseFacts(result.stdout)
    // (a health= line comes only once the project could be read)
    if (!facts.has('health')) throw failure('preflight', result.code, result.stdout, result.stderr)
    this.note('preflight: ok')
    const containers = containersFrom(facts)
    const now = containers.find(c => c.state === 'running' && c.policy !== 'no') ?? containers.find(live) ?? containers[0]
    this.result.previousImage = this.result.deployedImage = now?.configImage ?? facts.get('image_var')?.at(-1)
    this.result.previousImageId = this.result.deployedImageId = now?.imageId
    this.result.lastDeploy = this.fact(facts, 'last', '') || undefined
    this.result.lockHolder = this.fact(facts, 'holder', '').trim() || undefined
    this.note(`containers: ${containers.map(c => `${c.service} ${c.state}`).join(', ') || 'none'}`)
    const healthy = this.healthFrom(command.step, result)
    return this.finish(healthy ? 'healthy' : 'unhealthy', healthy ? undefined : this.result.health)
  }

  private async checkHealth(signal?: AbortSignal, timeout = this.ctx.settings.healthTimeout, afterRestart = true): Promise<boolean> {
    const command = commands.healthCheck(this.server.path, this.server.healthUrl, timeout, this.healthServices, afterRestart)
    return this.healthFrom(command.step, await this.steps!.exec(command, timeout + QUICK_STEP_SECONDS, signal))
  }

  private healthFrom(step: string, result: CommandResult): boolean {
    const facts = commands.parseFacts(result.stdout)
    this.result.health = `HTTP ${this.fact(facts, 'http', '?')}; ${describeContainers(this.fact(facts, 'containers', ''))}`
    this.note(`health: ${result.code === 0 ? 'ok' : 'failed'} (${this.result.health})`)
    if (result.code !== 0) {
      const failed = failure(step, result.code, result.stdout, result.stderr)
      if (facts.has('containers')) failed.message += `; containers: ${describeContainers(this.fact(facts, 'containers'))}`
      this.rememberFailure(failed)
    }
    return result.code === 0
  }

  /** Removes the images this deployment no longer needs, at the end; a failed prune costs disk space, not the deploy. */
  private prune(keep: string[]): void {
    this.atEnd(commands.pruneImages(this.server.path, legacyRollbackTag(this.server), keep.filter(Boolean)), '', facts =>
      this.note(`pruned ${this.fact(facts, 'removed', '0')} image(s) this deployment no longer needs`)
    )
  }

  /** Appends the outcome to the server's history, at the end. */
  private history(status: Status, from: string, to: string): void {
    const line = [new Date().toISOString(), status, `${from} -> ${to}`, this.ctx.runLabel].join('\t')
    this.atEnd(commands.appendHistory(this.server.path, line), 'history not written')
  }

  /**
   * Runs `command` in the last channel, with the unlock. A failure is noted as `label: reason`
   * (or as the reason alone: it names its step, "prune failed: …"); `ok` reads the facts otherwise.
   */
  private atEnd(command: RemoteCommand, label: string, ok?: (facts: Facts) => void): void {
    this.closing.push(this.closingStep(command, why => (label ? `${label}: ${why}` : why), this.ctx.settings.commandTimeout, ok))
  }

  /**
   * A step of the last channel: `failed` words its failure for the log (a warning, annotated, when
   * `level` says so), `ok` reads its facts.
   */
  private closingStep(command: RemoteCommand, failed: (why: string) => string, seconds: number, ok?: (facts: Facts) => void, level: 'note' | 'warn' = 'note'): Closing {
    return {
      part: this.part(command, seconds),
      done: (ran, lost) => {
        const why = lost ?? ran?.failure ?? (ran ? undefined : 'the connection ended before it ran')
        if (why) this[level](failed(errorText(why)))
        else ok?.(ran!.facts)
      }
    }
  }

  /** A step as a part of a sequence, bounded by command-timeout. */
  private part(command: RemoteCommand, seconds = this.ctx.settings.commandTimeout): Part {
    return { command, seconds }
  }

  /** Runs one step in a channel of its own (bounded by command-timeout). */
  private step(command: RemoteCommand, signal?: AbortSignal): Promise<Facts> {
    return this.steps!.step(command, this.ctx.settings.commandTimeout, signal)
  }

  private rememberFailure(error: unknown): void {
    this.result.error ??= errorText(error)
    if (error instanceof StepFailed) {
      this.result.failedStep ??= error.step
      this.result.failedOutput ??= error.output
    }
  }

  private checkCancelled(): void {
    if (this.ctx.signal.aborted) throw new Cancelled()
  }
}

/** The project's containers, from the `container=` lines (CONTAINER_FORMAT) of preflight or status. */
function containersFrom(facts: Facts): Container[] {
  return (facts.get('container') ?? []).map(line => {
    const [service = '', configImage = '', imageId = '', state = '', restarting = '', , , policy = ''] = line.split('|')
    return { service, configImage, imageId, state: restarting === 'true' ? 'restarting' : state, policy: policy || 'no' }
  })
}

function live(container: Container): boolean {
  return container.state === 'running' || container.state === 'restarting'
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

// Words for what a server reported, shared by the pipeline's messages and the report.

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

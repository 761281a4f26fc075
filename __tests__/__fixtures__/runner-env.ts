/** What the runner gives a JavaScript action's main step, and its post step alike (the run's identity). */
export const RUNNER_ENV = {
  GITHUB_RUN_ID: '1234567890',
  GITHUB_RUN_ATTEMPT: '1',
  GITHUB_JOB: 'deploy',
  GITHUB_ACTION: 'deploy-prd',
  RUNNER_NAME: 'GitHub Actions 7',
  RUNNER_TRACKING_ID: 'github_5f1c4b8e-0d7a-4c39-9a59-2b3b1f0e6a11'
}

/** Stands for input `ssh-private-key` (never parsed: no connection is made with it). */
export const SSH_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'

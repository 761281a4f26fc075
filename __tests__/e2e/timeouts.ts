// End-to-end tests drive real servers: a fleet deploy with health checks takes tens of seconds.
// (Jest ignores `testTimeout` inside a project entry, so it is set here for the e2e project.)
import { jest } from '@jest/globals'

jest.setTimeout(300_000)

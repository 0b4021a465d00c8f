import type { InputSpec } from '../plan/image.js';
import { dockerBackends } from './docker.js';
import type { ImageBackends } from './engine.js';

/**
 * The source, builder and janitor an input's form calls for. Today every form goes through the Docker engine;
 * a daemonless source (a `docker save` tar, an OCI layout, a registry) is chosen here by its transport.
 */
export async function backendsFor(input: InputSpec): Promise<ImageBackends> {
  switch (input.kind) {
    case 'dockerfile':
    case 'image':
      return dockerBackends();
  }
}

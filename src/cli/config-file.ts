// Which config file a command uses, and loading it with the errors printed the way an admin reads
// them (every problem at once, exit code 2).
import path from 'node:path';
import { PACKAGE_ROOT } from '../package-root.ts';
import { ConfigError, loadConfigFile, type LoadOptions, type LoadedConfig } from '../config/load.ts';
import { formatProblem, preflight, type PreflightProblem } from '../config/preflight.ts';

export const EXIT_CONFIG_ERROR = 2;

/** The shipped config, in the package's config/ folder. */
export const SHIPPED_CONFIG = path.join(PACKAGE_ROOT, 'config', 'butler-mqtt.yaml');

export function configPath(option: string | undefined): string {
  return option ?? process.env.BUTLER_MQTT_CONFIG ?? SHIPPED_CONFIG;
}

export function loadConfigOrExit(option: string | undefined, options: LoadOptions = {}): LoadedConfig {
  const file = configPath(option);
  try {
    return loadConfigFile(file, options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`butler-mqtt: invalid configuration\n${err.message}\n`);
      process.exit(EXIT_CONFIG_ERROR);
    }
    throw err;
  }
}

/** The preflight problems printed as `run` and `check-config` show them; exits 2 on any that is not a warning. */
export function preflightOrExit(config: LoadedConfig): PreflightProblem[] {
  const problems = preflight(config);
  const errors = problems.filter((p) => !p.warning);
  if (errors.length > 0) {
    process.stderr.write(
      `butler-mqtt: the configuration cannot be used on this machine\n${config.file}: ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n${errors.map(formatProblem).join('\n')}\n`,
    );
    process.exit(EXIT_CONFIG_ERROR);
  }
  return problems;
}

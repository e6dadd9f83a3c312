export {
  loadConfig,
  isLoopback,
  parseListen,
  configFlagOptions,
  flagsToSettings,
  settingsHelp,
  ConfigError,
  isGuid,
  listSetting,
  DEFAULT_IMDS_ENDPOINT,
} from './config.ts';
export type { Config, ConfigSources, ListenAddress } from './config.ts';
export { SETTINGS, settingsTable } from './settings.ts';

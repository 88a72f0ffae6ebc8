/**
 * The extension's settings (Settings Editor, `schema/plugin.json`), read
 * defensively: a value of the wrong type is its default.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { DEFAULT_SETTINGS, IDurableSettings, MarkerStyle } from './tokens';

const MARKER_STYLES: ReadonlyArray<MarkerStyle> = ['badge-and-outline', 'badge', 'outline'];

/** The settings a composite settings object holds. */
export function readSettings(settings: ISettingRegistry.ISettings): IDurableSettings {
  const get = (key: keyof IDurableSettings): unknown => settings.get(key).composite;
  const poll = get('pollInterval');
  const badges = get('showBadges');
  const style = get('markerStyle');
  return {
    pollInterval: typeof poll === 'number' && poll > 0 ? poll : DEFAULT_SETTINGS.pollInterval,
    showBadges: typeof badges === 'boolean' ? badges : DEFAULT_SETTINGS.showBadges,
    markerStyle: MARKER_STYLES.includes(style as MarkerStyle)
      ? (style as MarkerStyle)
      : DEFAULT_SETTINGS.markerStyle
  };
}

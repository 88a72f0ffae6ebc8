/**
 * The sidebar's icon: a stopwatch with a replay arrow.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="9" y="1" width="6" height="2.2" rx="1"/>
    <path d="M12 4.5a8.75 8.75 0 1 0 8.75 8.75A8.76 8.76 0 0 0 12 4.5zm0 15.5a6.75 6.75 0 1 1 6.75-6.75A6.76 6.76 0 0 1 12 20z"/>
    <path d="M11 8h2v5.6l3.4 2-1 1.7L11 14.7z"/>
  </g>
</svg>`;

export const durableIcon = new LabIcon({ name: 'kitteh_magic:durable', svgstr: SVG });

"use strict";(self.rspackChunkkitteh_magic=self.rspackChunkkitteh_magic||[]).push([[232],{475(e,t,o){var r=o(601),a=o.n(r),n=o(314),i=(o.n(n))()(a());i.push([e.id,`/* kitteh_magic: the Durable sidebar, cell badges, status-bar item and journal
   dialog. Colours come from JupyterLab's theme variables (no hard-coded
   colour), so light and dark themes both keep their contrast. */

/* State colours, shared by the sidebar rows, the cell badges and the journal.
   The theme's palette variables, a shade per theme chosen for text contrast of
   at least 4.5:1 on the panel's and the notebook's backgrounds (tested). */
.km-Sidebar,
.km-DurableCell,
.km-Journal {
  --km-done: var(--md-green-900);
  --km-replayed: var(--md-blue-800);
  --km-running: var(--md-deep-orange-900);
  --km-failed: var(--md-red-900);
  --km-stale: var(--md-brown-500);
  --km-interrupted: var(--md-pink-800);
  --km-invalidated: var(--md-grey-700);
}

body[data-jp-theme-light='false'] .km-Sidebar,
body[data-jp-theme-light='false'] .km-DurableCell,
body[data-jp-theme-light='false'] .km-Journal {
  --km-done: var(--md-green-300);
  --km-replayed: var(--md-blue-200);
  --km-running: var(--md-amber-400);
  --km-failed: var(--md-red-200);
  --km-stale: var(--md-brown-200);
  --km-interrupted: var(--md-pink-200);
  --km-invalidated: var(--md-grey-400);
}

.km-Sidebar {
  display: flex;
  flex-direction: column;
  gap: 8px;
  padding: 8px 10px;
  overflow-y: auto;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
}

.km-Sidebar-title {
  margin: 0;
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  text-transform: uppercase;
  letter-spacing: 0.04em;
}

.km-Sidebar-notebook {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.km-Sidebar-session {
  display: flex;
  align-items: center;
  gap: 6px;
  min-width: 0;
}

.km-Sidebar-label {
  flex: none;
  color: var(--jp-ui-font-color2);
}

.km-Sidebar-sessionName {
  min-width: 0;
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-ui-font-size0);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.km-SessionPicker-wrap {
  position: relative;
  flex: 1 1 0;
  min-width: 0;
}

.km-SessionPicker-wrap::after {
  /* The arrow JupyterLab's styled select hides: a caret in the theme's text colour. */
  content: '';
  position: absolute;
  top: 50%;
  right: 8px;
  margin-top: -2px;
  border: 4px solid transparent;
  border-top-color: var(--jp-ui-font-color2);
  border-bottom: 0;
  pointer-events: none;
}

.km-Sidebar .km-Sidebar-session select.km-SessionPicker {
  display: block;
  width: 100%;
  min-width: 0;
  height: 24px;
  padding: 0 22px 0 6px;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  font-size: var(--jp-ui-font-size1);
}

.km-Totals {
  /* Each box as wide as its value ("2 min 6 s" needs more than "6"), the rest shared out;
     below that (a very narrow panel) min-width 0 lets a value end in an ellipsis instead of
     widening the panel. */
  display: flex;
  gap: 4px;
}

.km-Total {
  flex: 1 1 auto;
  min-width: 0;
  display: flex;
  flex-direction: column;
  align-items: center;
  padding: 4px 2px;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: var(--jp-border-radius);
  background: var(--jp-layout-color1);
}

.km-Total-value {
  max-width: 100%;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
}

.km-Total-saved .km-Total-value {
  color: var(--km-replayed);
}

.km-Total-label {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.km-Sidebar-top,
.km-Sidebar-list {
  display: flex;
  flex-direction: column;
  gap: 8px;
}

.km-Actions {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.km-Button.jp-Button .km-ButtonIcon,
.km-Button.jp-Button .km-ButtonIcon svg {
  display: inline-flex;
  width: 14px;
  height: 14px;
}

.km-RunStale.jp-Button {
  display: inline-flex;
  align-items: center;
  gap: 3px;
}

.km-IconButton.jp-Button {
  display: inline-flex;
  align-items: center;
  justify-content: center;
  min-width: 24px;
  padding: 0 4px;
}

.km-Button.jp-Button:disabled {
  opacity: 0.45;
}

.km-Button.jp-Button:focus-visible,
.km-Step-name.km-mod-link:focus-visible,
.km-Status:focus-visible {
  outline: var(--jp-border-width) solid var(--jp-brand-color1);
  outline-offset: 1px;
}

.km-Sidebar .km-Filter {
  width: 100%;
  box-sizing: border-box;
  height: 24px;
  padding: 0 6px;
  font-size: var(--jp-ui-font-size1);
}

.km-Button.jp-Button {
  padding: 0 8px;
  min-height: 24px;
  border: var(--jp-border-width) solid var(--jp-border-color1);
  border-radius: var(--jp-border-radius);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

.km-Reset.jp-Button:hover {
  color: var(--km-failed);
  border-color: var(--km-failed);
}

.km-Sidebar-error {
  padding: 6px;
  border-left: 3px solid var(--km-failed);
  background: var(--jp-layout-color1);
  color: var(--km-failed);
  word-break: break-word;
}

.km-Sidebar-empty {
  margin: 0;
  color: var(--jp-ui-font-color2);
  line-height: 1.4;
}

.km-StepList {
  list-style: none;
  margin: 0;
  padding: 0;
  border-top: var(--jp-border-width) solid var(--jp-border-color2);
}

.km-Step {
  padding: 5px 2px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}

.km-Step-top {
  display: flex;
  align-items: center;
  gap: 6px;
}

.km-StateIcon {
  flex: none;
  width: 16px;
  text-align: center;
  font-weight: 700;
}

.km-Step-name {
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  font-family: var(--jp-code-font-family);
}

button.km-Step-name {
  padding: 0;
  border: none;
  background: none;
  color: inherit;
  font-size: inherit;
  text-align: left;
}

.km-Step-name.km-mod-link {
  cursor: pointer;
}

.km-Step-name.km-mod-link:hover {
  text-decoration: underline;
  color: var(--km-replayed);
}

.km-Step-state {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.km-Step .km-IconButton.jp-Button {
  min-height: 20px;
  min-width: 20px;
  padding: 0 2px;
  border-color: transparent;
}

.km-Step .km-IconButton.jp-Button:hover:not(:disabled) {
  border-color: var(--jp-border-color1);
}

.km-Invalidate.jp-Button:hover:not(:disabled) {
  border-color: var(--km-running);
}

.km-Step-meta {
  display: flex;
  flex-wrap: wrap;
  gap: 2px 10px;
  padding-left: 22px;
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.km-Step-meta > span {
  white-space: nowrap;
}

.km-Step-activities {
  cursor: help;
}

.km-state-running .km-Step-activities {
  color: var(--km-running);
  font-weight: 600;
}

.km-Step-lease {
  color: var(--km-running);
  cursor: help;
}

.km-Step-saved {
  color: var(--km-replayed);
  font-weight: 600;
}

.km-Step-outputs,
.km-Step-reason {
  padding-left: 22px;
  font-size: var(--jp-ui-font-size0);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.km-Step-outputs {
  color: var(--jp-ui-font-color2);
}

.km-Step-outputs code {
  font-family: var(--jp-code-font-family);
  color: var(--jp-ui-font-color1);
}

.km-Step-reason {
  color: var(--jp-ui-font-color1);
  white-space: normal;
  border-left: 2px solid var(--km-stale);
  margin-left: 22px;
  padding-left: 6px;
}

.km-Step.km-mod-pending .km-Step-name,
.km-Step.km-mod-pending .km-Step-state,
.km-Step.km-mod-pending .km-StateIcon {
  color: var(--jp-ui-font-color2);
}

.km-Step.km-mod-pending .km-Step-name {
  font-style: italic;
}

.km-Step.km-mod-stored .km-StateIcon {
  color: var(--jp-ui-font-color2);
}

.km-Step-error {
  padding-left: 22px;
  color: var(--km-failed);
  font-size: var(--jp-ui-font-size0);
  white-space: pre-wrap;
  word-break: break-word;
}

.km-state-done .km-StateIcon { color: var(--km-done); }
.km-state-replayed .km-StateIcon { color: var(--km-replayed); }
.km-state-running .km-StateIcon { color: var(--km-running); animation: km-pulse 1s ease-in-out infinite; }
.km-state-failed .km-StateIcon { color: var(--km-failed); }
.km-state-stale .km-StateIcon { color: var(--km-stale); }
.km-state-interrupted .km-StateIcon { color: var(--km-interrupted); }
.km-state-invalidated .km-StateIcon { color: var(--km-invalidated); }
.km-state-invalidated .km-Step-name { color: var(--jp-ui-font-color2); text-decoration: line-through; }

@keyframes km-pulse {
  50% { opacity: 0.3; }
}

/* Cell badges: a one-line tag above the editor of a durable cell. */

.km-DurableCell {
  --km-badge: var(--km-done);
}

.km-DurableCell.km-state-replayed { --km-badge: var(--km-replayed); }
.km-DurableCell.km-state-running { --km-badge: var(--km-running); }
.km-DurableCell.km-state-failed { --km-badge: var(--km-failed); }
.km-DurableCell.km-state-stale { --km-badge: var(--km-stale); }
.km-DurableCell.km-state-interrupted { --km-badge: var(--km-interrupted); }
.km-DurableCell.km-state-invalidated { --km-badge: var(--km-invalidated); }

.km-DurableCell > .jp-CellHeader {
  height: auto;
}

.km-Badge {
  display: inline-flex;
  align-items: center;
  gap: 4px;
  margin: 2px 0 2px var(--jp-cell-prompt-width, 64px);
  padding: 0 6px;
  border: var(--jp-border-width) solid var(--km-badge);
  border-radius: 8px;
  background: var(--jp-layout-color1);
  color: var(--km-badge);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size0);
  line-height: 16px;
  white-space: nowrap;
}

.km-Badge-icon {
  font-weight: 700;
}

.km-DurableCell.km-state-running .km-Badge-icon {
  animation: km-pulse 1s ease-in-out infinite;
}

.km-DurableCell .jp-InputPrompt {
  border-left: 2px solid var(--km-badge);
}

/* Marker style (Settings Editor), a data attribute of the body. */
body[data-km-markers='badge'] .km-DurableCell .jp-InputPrompt,
body[data-km-markers='off'] .km-DurableCell .jp-InputPrompt {
  border-left: none;
}

body[data-km-markers='outline'] .km-DurableCell .km-Badge,
body[data-km-markers='off'] .km-DurableCell .km-Badge {
  display: none;
}

.km-Badge[data-shown='stored'] {
  border-style: dashed;
}

/* The status-bar item: a button that reads as the other text items. */
.km-Status {
  height: 100%;
  padding: 0 4px;
  border: none;
  background: none;
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
  cursor: pointer;
}

.km-Status:hover {
  background: var(--jp-layout-color2);
}

/* The journal dialog. */
.km-Journal {
  max-width: 720px;
  font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1);
}

.km-Journal-summary,
.km-Journal-empty {
  margin: 0 0 8px;
  color: var(--jp-ui-font-color2);
}

.km-Journal-table {
  border-collapse: collapse;
  width: 100%;
}

.km-Journal-table th,
.km-Journal-table td {
  padding: 2px 8px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  text-align: left;
  white-space: nowrap;
}

.km-Journal-table th {
  color: var(--jp-ui-font-color2);
  font-weight: 600;
}

.km-Journal-callee {
  font-family: var(--jp-code-font-family);
}

.km-Journal-duration,
.km-Journal-attempts {
  text-align: right;
}

.km-Journal-outcome {
  white-space: normal;
}

.km-Journal-call.km-outcome-error .km-Journal-outcome {
  color: var(--km-failed);
}

.km-Journal-call[data-from-journal='true'] .km-Journal-outcome {
  color: var(--km-replayed);
}
`,""]),o.d(t,{},{A:i})},314(e){e.exports=function(e){var t=[];return t.toString=function(){return this.map(function(t){var o="",r=void 0!==t[5];return t[4]&&(o+="@supports (".concat(t[4],") {")),t[2]&&(o+="@media ".concat(t[2]," {")),r&&(o+="@layer".concat(t[5].length>0?" ".concat(t[5]):""," {")),o+=e(t),r&&(o+="}"),t[2]&&(o+="}"),t[4]&&(o+="}"),o}).join("")},t.i=function(e,o,r,a,n){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(r)for(var l=0;l<this.length;l++){var d=this[l][0];null!=d&&(i[d]=!0)}for(var p=0;p<e.length;p++){var m=[].concat(e[p]);r&&i[m[0]]||(void 0!==n&&(void 0===m[5]||(m[1]="@layer".concat(m[5].length>0?" ".concat(m[5]):""," {").concat(m[1],"}")),m[5]=n),o&&(m[2]&&(m[1]="@media ".concat(m[2]," {").concat(m[1],"}")),m[2]=o),a&&(m[4]?(m[1]="@supports (".concat(m[4],") {").concat(m[1],"}"),m[4]=a):m[4]="".concat(a)),t.push(m))}},t}},601(e){e.exports=function(e){return e[1]}},72(e){var t=[];function o(e){for(var o=-1,r=0;r<t.length;r++)if(t[r].identifier===e){o=r;break}return o}function r(e,r){for(var a={},n=[],i=0;i<e.length;i++){var l=e[i],d=r.base?l[0]+r.base:l[0],p=a[d]||0,m="".concat(d," ").concat(p);a[d]=p+1;var s=o(m),c={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==s)t[s].references++,t[s].updater(c);else{var u=function(e,t){var o=t.domAPI(t);return o.update(e),function(t){t?(t.css!==e.css||t.media!==e.media||t.sourceMap!==e.sourceMap||t.supports!==e.supports||t.layer!==e.layer)&&o.update(e=t):o.remove()}}(c,r);r.byIndex=i,t.splice(i,0,{identifier:m,updater:u,references:1})}n.push(m)}return n}e.exports=function(e,a){var n=r(e=e||[],a=a||{});return function(e){e=e||[];for(var i=0;i<n.length;i++){var l=o(n[i]);t[l].references--}for(var d=r(e,a),p=0;p<n.length;p++){var m=o(n[p]);0===t[m].references&&(t[m].updater(),t.splice(m,1))}n=d}}},659(e){var t={};e.exports=function(e,o){var r=function(e){if(void 0===t[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}t[e]=o}return t[e]}(e);if(!r)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");r.appendChild(o)}},540(e){e.exports=function(e){var t=document.createElement("style");return e.setAttributes(t,e.attributes),e.insert(t,e.options),t}},56(e,t,o){e.exports=function(e){var t=o.nc;t&&e.setAttribute("nonce",t)}},206(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var t=e.insertStyleElement(e);return{update:function(o){var r,a,n;r="",o.supports&&(r+="@supports (".concat(o.supports,") {")),o.media&&(r+="@media ".concat(o.media," {")),(a=void 0!==o.layer)&&(r+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),r+=o.css,a&&(r+="}"),o.media&&(r+="}"),o.supports&&(r+="}"),(n=o.sourceMap)&&"u">typeof btoa&&(r+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),e.styleTagTransform(r,t,e.options)},remove:function(){var e;null===(e=t).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,t){if(t.styleSheet)t.styleSheet.cssText=e;else{for(;t.firstChild;)t.removeChild(t.firstChild);t.appendChild(document.createTextNode(e))}}},579(e,t,o){var r=o(72),a=o.n(r),n=o(206),i=o.n(n),l=o(659),d=o.n(l),p=o(56),m=o.n(p),s=o(540),c=o.n(s),u=o(113),k=o.n(u),f=o(475),v={};v.styleTagTransform=k(),v.setAttributes=m(),v.insert=d().bind(null,"head"),v.domAPI=i(),v.insertStyleElement=c(),a()(f.A,v),f.A&&f.A.locals&&f.A.locals}}]);
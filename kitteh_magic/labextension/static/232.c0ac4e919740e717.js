"use strict";(self.rspackChunkkitteh_magic=self.rspackChunkkitteh_magic||[]).push([[232],{475(e,r,o){var t=o(601),a=o.n(t),n=o(314),i=(o.n(n))()(a());i.push([e.id,`/* kitteh_magic: the Durable sidebar and cell badges. Colours come from
   JupyterLab's theme variables so light and dark themes both work. */

/* State colours, shared by the sidebar rows and the cell badges. */
.km-Sidebar,
.km-DurableCell {
  --km-done: var(--jp-success-color1);
  --km-replayed: var(--jp-brand-color1);
  --km-running: var(--jp-warn-color1);
  --km-failed: var(--jp-error-color1);
  --km-stale: var(--jp-warn-color2);
  --km-interrupted: var(--jp-error-color2);
  --km-invalidated: var(--jp-ui-font-color3);
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
  display: grid;
  /* minmax(0, …): a long value shrinks its column's content, never the grid's width. */
  grid-template-columns: repeat(3, minmax(0, 1fr));
  gap: 4px;
}

.km-Total {
  display: flex;
  flex-direction: column;
  align-items: center;
  padding: 4px 2px;
  border-radius: var(--jp-border-radius);
  background: var(--jp-layout-color2);
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

.km-Actions {
  display: flex;
  gap: 4px;
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
  color: var(--jp-error-color1);
  border-color: var(--jp-error-color1);
}

.km-Sidebar-error {
  padding: 6px;
  border-left: 3px solid var(--jp-error-color1);
  background: var(--jp-layout-color2);
  color: var(--jp-error-color1);
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

.km-Step-name.km-mod-link {
  cursor: pointer;
}

.km-Step-name.km-mod-link:hover {
  text-decoration: underline;
  color: var(--jp-brand-color1);
}

.km-Step-state {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.km-Invalidate.jp-Button {
  min-height: 18px;
  padding: 0 4px;
  border-color: transparent;
  color: var(--jp-ui-font-color2);
}

.km-Invalidate.jp-Button:hover:not(:disabled) {
  color: var(--jp-error-color1);
  border-color: var(--jp-error-color1);
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

.km-Step-error {
  padding-left: 22px;
  color: var(--jp-error-color1);
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
`,""]),o.d(r,{},{A:i})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",t=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),t&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),t&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,t,a,n){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(t)for(var l=0;l<this.length;l++){var p=this[l][0];null!=p&&(i[p]=!0)}for(var s=0;s<e.length;s++){var d=[].concat(e[s]);t&&i[d[0]]||(void 0!==n&&(void 0===d[5]||(d[1]="@layer".concat(d[5].length>0?" ".concat(d[5]):""," {").concat(d[1],"}")),d[5]=n),o&&(d[2]&&(d[1]="@media ".concat(d[2]," {").concat(d[1],"}")),d[2]=o),a&&(d[4]?(d[1]="@supports (".concat(d[4],") {").concat(d[1],"}"),d[4]=a):d[4]="".concat(a)),r.push(d))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,t=0;t<r.length;t++)if(r[t].identifier===e){o=t;break}return o}function t(e,t){for(var a={},n=[],i=0;i<e.length;i++){var l=e[i],p=t.base?l[0]+t.base:l[0],s=a[p]||0,d="".concat(p," ").concat(s);a[p]=s+1;var c=o(d),m={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==c)r[c].references++,r[c].updater(m);else{var u=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(m,t);t.byIndex=i,r.splice(i,0,{identifier:d,updater:u,references:1})}n.push(d)}return n}e.exports=function(e,a){var n=t(e=e||[],a=a||{});return function(e){e=e||[];for(var i=0;i<n.length;i++){var l=o(n[i]);r[l].references--}for(var p=t(e,a),s=0;s<n.length;s++){var d=o(n[s]);0===r[d].references&&(r[d].updater(),r.splice(d,1))}n=p}}},659(e){var r={};e.exports=function(e,o){var t=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},206(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var t,a,n;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(a=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,a&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(n=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),e.styleTagTransform(t,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,o){var t=o(72),a=o.n(t),n=o(206),i=o.n(n),l=o(659),p=o.n(l),s=o(56),d=o.n(s),c=o(540),m=o.n(c),u=o(113),f=o.n(u),v=o(475),k={};k.styleTagTransform=f(),k.setAttributes=d(),k.insert=p().bind(null,"head"),k.domAPI=i(),k.insertStyleElement=m(),a()(v.A,k),v.A&&v.A.locals&&v.A.locals}}]);
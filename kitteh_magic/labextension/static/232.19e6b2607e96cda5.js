"use strict";(self.rspackChunkkitteh_magic=self.rspackChunkkitteh_magic||[]).push([[232],{475(e,r,o){var a=o(601),t=o.n(a),n=o(314),i=(o.n(n))()(t());i.push([e.id,`/* kitteh_magic: the Durable sidebar and cell badges. Colours come from
   JupyterLab's theme variables so light and dark themes both work. */

.km-Sidebar {
  --km-done: var(--jp-success-color1);
  --km-replayed: var(--jp-brand-color1);
  --km-running: var(--jp-warn-color1);
  --km-failed: var(--jp-error-color1);
  --km-stale: var(--jp-warn-color2);
  --km-interrupted: var(--jp-error-color2);
  --km-invalidated: var(--jp-ui-font-color3);

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
}

.km-Sidebar-label {
  color: var(--jp-ui-font-color2);
}

.km-Sidebar-sessionName {
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-ui-font-size0);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.km-SessionPicker {
  flex: 1;
  min-width: 0;
  height: 24px;
  padding: 0 4px;
  border: var(--jp-border-width) solid var(--jp-border-color1);
  border-radius: var(--jp-border-radius);
  background: var(--jp-input-background, var(--jp-layout-color1));
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

.km-Totals {
  display: grid;
  grid-template-columns: repeat(3, 1fr);
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
  --km-done: var(--jp-success-color1);
  --km-replayed: var(--jp-brand-color1);
  --km-running: var(--jp-warn-color1);
  --km-failed: var(--jp-error-color1);
  --km-stale: var(--jp-warn-color2);
  --km-interrupted: var(--jp-error-color2);
  --km-invalidated: var(--jp-ui-font-color3);
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
`,""]),o.d(r,{},{A:i})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",a=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),a&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),a&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,a,t,n){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(a)for(var l=0;l<this.length;l++){var p=this[l][0];null!=p&&(i[p]=!0)}for(var d=0;d<e.length;d++){var s=[].concat(e[d]);a&&i[s[0]]||(void 0!==n&&(void 0===s[5]||(s[1]="@layer".concat(s[5].length>0?" ".concat(s[5]):""," {").concat(s[1],"}")),s[5]=n),o&&(s[2]&&(s[1]="@media ".concat(s[2]," {").concat(s[1],"}")),s[2]=o),t&&(s[4]?(s[1]="@supports (".concat(s[4],") {").concat(s[1],"}"),s[4]=t):s[4]="".concat(t)),r.push(s))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,a=0;a<r.length;a++)if(r[a].identifier===e){o=a;break}return o}function a(e,a){for(var t={},n=[],i=0;i<e.length;i++){var l=e[i],p=a.base?l[0]+a.base:l[0],d=t[p]||0,s="".concat(p," ").concat(d);t[p]=d+1;var c=o(s),m={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==c)r[c].references++,r[c].updater(m);else{var u=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(m,a);a.byIndex=i,r.splice(i,0,{identifier:s,updater:u,references:1})}n.push(s)}return n}e.exports=function(e,t){var n=a(e=e||[],t=t||{});return function(e){e=e||[];for(var i=0;i<n.length;i++){var l=o(n[i]);r[l].references--}for(var p=a(e,t),d=0;d<n.length;d++){var s=o(n[d]);0===r[s].references&&(r[s].updater(),r.splice(s,1))}n=p}}},659(e){var r={};e.exports=function(e,o){var a=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!a)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");a.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},206(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var a,t,n;a="",o.supports&&(a+="@supports (".concat(o.supports,") {")),o.media&&(a+="@media ".concat(o.media," {")),(t=void 0!==o.layer)&&(a+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),a+=o.css,t&&(a+="}"),o.media&&(a+="}"),o.supports&&(a+="}"),(n=o.sourceMap)&&"u">typeof btoa&&(a+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),e.styleTagTransform(a,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,o){var a=o(72),t=o.n(a),n=o(206),i=o.n(n),l=o(659),p=o.n(l),d=o(56),s=o.n(d),c=o(540),m=o.n(c),u=o(113),v=o.n(u),f=o(475),k={};k.styleTagTransform=v(),k.setAttributes=s(),k.insert=p().bind(null,"head"),k.domAPI=i(),k.insertStyleElement=m(),t()(f.A,k),f.A&&f.A.locals&&f.A.locals}}]);
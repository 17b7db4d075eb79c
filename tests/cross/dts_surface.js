// SPDX-License-Identifier: MIT OR Apache-2.0
// Prints, as JSON, the public surface a TypeScript declaration file declares, read with the
// TypeScript compiler's own parser (the project's dev dependency): exported classes with their
// constructors, methods (with parameters, options objects expanded) and properties, exported
// interfaces (their fields with their doc comments), type aliases that are unions of string
// literals, exported constants, and enumerations (an exported constant object of string
// literals: `declare const SagaStatus: { readonly PENDING: 'PENDING', ... }`). Used by
// test_parity.py.
//
// An options object is a parameter typed as an inline object type or as an interface named
// `...Options` (`options?: SaveOptions`): its fields are the call's named options. A parameter
// of any other interface type (`saga: SagaRecordInput`, `sagaRepository: SagaRepository`) is
// one value.
//
//   node dts_surface.js <file.d.ts>              the declared surface
//   node dts_surface.js --runtime <module.js>    the members the module's classes have at runtime
//   node dts_surface.js --constants <module.js>  the module's constants and enumerations, and the
//                                                core's tables as its native part (native.js
//                                                beside it) gives them
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..', '..')
const ts = require(require.resolve('typescript', { paths: [ROOT] }))

function isExported(node) {
  return (ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Export) !== 0
}

// The text of a node's doc comment(s), or ''.
function docOf(node) {
  return (node.jsDoc || []).map((d) => ts.getTextOfJSDocComment(d.comment) || '').join('\n')
}

function hasModifier(node, kind) {
  return (node.modifiers || []).some((m) => m.kind === kind)
}

function surface(file) {
  const text = fs.readFileSync(file, 'utf8')
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const aliases = new Map() // name -> type node
  const interfaces = new Map() // name -> declaration
  const classes = []
  for (const st of sf.statements) {
    if (ts.isTypeAliasDeclaration(st)) aliases.set(st.name.text, st.type)
    else if (ts.isInterfaceDeclaration(st)) interfaces.set(st.name.text, st)
  }

  // The string literals a type is a union of (null/undefined ignored), or null if it is not
  // such a union.
  function literals(type, seen = new Set()) {
    if (!type) return null
    if (ts.isParenthesizedTypeNode(type)) return literals(type.type, seen)
    if (ts.isUnionTypeNode(type)) {
      const out = []
      for (const t of type.types) {
        const sub = literals(t, seen)
        if (sub === null) return null
        out.push(...sub)
      }
      return out
    }
    if (ts.isLiteralTypeNode(type)) {
      if (type.literal.kind === ts.SyntaxKind.NullKeyword) return []
      if (ts.isStringLiteral(type.literal)) return [type.literal.text]
      return null
    }
    if (type.kind === ts.SyntaxKind.UndefinedKeyword) return []
    if (ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName)) {
      const name = type.typeName.text
      if (aliases.has(name) && !seen.has(name)) {
        seen.add(name)
        return literals(aliases.get(name), seen)
      }
    }
    return null
  }

  // The members of an options object type (an inline type literal or a local interface, with
  // the interfaces it extends), or null.
  function fieldsOf(type, seen = new Set()) {
    if (!type) return null
    if (ts.isUnionTypeNode(type)) {
      // `{...} | undefined`
      const parts = type.types.map((t) => fieldsOf(t, seen)).filter((f) => f !== null)
      return parts.length === 1 ? parts[0] : null
    }
    let members
    let inherited = []
    if (ts.isTypeLiteralNode(type)) {
      members = type.members
    } else if (ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName)) {
      const decl = interfaces.get(type.typeName.text)
      if (!decl || seen.has(decl)) return null
      seen.add(decl)
      members = decl.members
      for (const clause of decl.heritageClauses || []) {
        for (const t of clause.types) {
          const base = interfaces.get(t.expression.getText(sf))
          if (base) inherited = inherited.concat(fieldsOf(ts.factory.createTypeReferenceNode(t.expression.getText(sf)), seen) || [])
        }
      }
    } else {
      return null
    }
    const own = members
      .filter((m) => ts.isPropertySignature(m) && m.name)
      .map((m) => ({
        name: m.name.getText(sf),
        optional: Boolean(m.questionToken),
        type: m.type ? m.type.getText(sf) : 'any',
        literals: literals(m.type),
        doc: docOf(m),
      }))
    return inherited.filter((f) => !own.some((o) => o.name === f.name)).concat(own)
  }

  // Whether a parameter's type is an options object (see the header), `| undefined` aside.
  function isOptions(type) {
    if (!type) return false
    if (ts.isParenthesizedTypeNode(type)) return isOptions(type.type)
    if (ts.isUnionTypeNode(type)) {
      const parts = type.types.filter(
        (t) => !(t.kind === ts.SyntaxKind.UndefinedKeyword || (ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword)),
      )
      return parts.length === 1 && isOptions(parts[0])
    }
    if (ts.isTypeLiteralNode(type)) return true
    return ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName) && /Options$/.test(type.typeName.text)
  }

  function params(node) {
    return node.parameters.map((p) => {
      const fields = isOptions(p.type) ? fieldsOf(p.type) : null
      return {
        name: p.name.getText(sf),
        optional: Boolean(p.questionToken || p.initializer || p.dotDotDotToken),
        rest: Boolean(p.dotDotDotToken),
        type: p.type ? p.type.getText(sf) : 'any',
        literals: literals(p.type),
        fields, // an options object: its members, else null
      }
    })
  }

  function returns(node) {
    const type = node.type ? node.type.getText(sf) : 'any'
    const isAsync = /^Promise</.test(type)
    const inner = isAsync ? type.slice('Promise<'.length, -1).trim() : type
    return { type, async: isAsync, void: inner === 'void' || inner === 'undefined' }
  }

  for (const st of sf.statements) {
    if (!ts.isClassDeclaration(st) || !st.name || !isExported(st)) continue
    const cls = { name: st.name.text, extends: [], members: [] }
    for (const clause of st.heritageClauses || []) {
      for (const t of clause.types) cls.extends.push(t.expression.getText(sf))
    }
    for (const m of st.members) {
      if (hasModifier(m, ts.SyntaxKind.PrivateKeyword) || hasModifier(m, ts.SyntaxKind.ProtectedKeyword)) continue
      if (m.name && ts.isPrivateIdentifier(m.name)) continue
      const isStatic = hasModifier(m, ts.SyntaxKind.StaticKeyword)
      if (ts.isConstructorDeclaration(m)) {
        cls.members.push({ kind: 'constructor', name: 'constructor', params: params(m) })
      } else if (ts.isMethodDeclaration(m)) {
        cls.members.push({ kind: 'method', name: m.name.getText(sf), static: isStatic, params: params(m), returns: returns(m) })
      } else if (ts.isPropertyDeclaration(m)) {
        cls.members.push({
          kind: 'property',
          name: m.name.getText(sf),
          static: isStatic,
          readonly: hasModifier(m, ts.SyntaxKind.ReadonlyKeyword),
          type: m.type ? m.type.getText(sf) : 'any',
          literals: literals(m.type),
        })
      } else if (ts.isGetAccessorDeclaration(m)) {
        cls.members.push({
          kind: 'property',
          name: m.name.getText(sf),
          static: isStatic,
          readonly: !st.members.some((o) => ts.isSetAccessorDeclaration(o) && o.name.getText(sf) === m.name.getText(sf)),
          type: m.type ? m.type.getText(sf) : 'any',
          literals: literals(m.type),
        })
      }
    }
    classes.push(cls)
  }

  const ifaces = {}
  for (const [name, decl] of interfaces) {
    if (!isExported(decl)) continue
    ifaces[name] = {
      extends: (decl.heritageClauses || []).flatMap((c) => c.types.map((t) => t.expression.getText(sf))),
      fields: fieldsOf(ts.factory.createTypeReferenceNode(name)) || [],
    }
  }
  const unions = {}
  for (const [name, type] of aliases) {
    const lits = literals(type)
    if (lits !== null) unions[name] = lits
  }
  const constants = []
  const enums = {}
  for (const st of sf.statements) {
    if (!ts.isVariableStatement(st) || !isExported(st)) continue
    for (const d of st.declarationList.declarations) {
      const members = enumMembers(d.type)
      if (members === null) constants.push(d.name.getText(sf))
      else enums[d.name.getText(sf)] = members
    }
  }
  return { classes, interfaces: ifaces, unions, constants, enums }
}

// `{ readonly PENDING: 'PENDING', ... }` → `{ PENDING: 'PENDING', ... }`, else null.
function enumMembers(type) {
  if (!type || !ts.isTypeLiteralNode(type) || type.members.length === 0) return null
  const out = {}
  for (const m of type.members) {
    if (!ts.isPropertySignature(m) || !m.type || !ts.isLiteralTypeNode(m.type) || !ts.isStringLiteral(m.type.literal)) {
      return null
    }
    out[m.name.getText()] = m.type.literal.text
  }
  return out
}

// The public members the classes a module exports have at runtime (own and inherited from
// the package's own prototypes; Object and EventEmitter members are left out), and for an
// EventEmitter the methods it inherits from EventEmitter (which its declaration may restate
// with its events' types).
function runtime(file) {
  const { EventEmitter } = require('node:events')
  const mod = require(path.resolve(file))
  const stop = new Set([Object.prototype, EventEmitter.prototype, Function.prototype])
  const out = {}
  for (const [name, value] of Object.entries(mod)) {
    if (typeof value !== 'function' || !/^[A-Z]/.test(name)) continue
    const members = {}
    for (let proto = value.prototype; proto && !stop.has(proto); proto = Object.getPrototypeOf(proto)) {
      for (const key of Object.getOwnPropertyNames(proto)) {
        if (key === 'constructor' || key in members) continue
        const d = Object.getOwnPropertyDescriptor(proto, key)
        members[key] = typeof d.value === 'function' ? 'method' : 'property'
      }
      for (const sym of Object.getOwnPropertySymbols(proto)) {
        // Node 20 polyfills these well-known symbols with descriptions like `nodejs.asyncDispose`
        const name =
          sym === Symbol.asyncDispose ? 'Symbol.asyncDispose' : sym === Symbol.dispose ? 'Symbol.dispose' : sym.description
        members[`[${name}]`] = 'method'
      }
    }
    const statics = Object.getOwnPropertyNames(value).filter((k) => !['length', 'name', 'prototype'].includes(k))
    const emitter = value.prototype instanceof EventEmitter
    const inherited = emitter
      ? Object.getOwnPropertyNames(EventEmitter.prototype).filter((k) => k !== 'constructor' && !(k in members))
      : []
    out[name] = { members, statics, extends: emitter ? ['EventEmitter'] : [], inherited }
  }
  return out
}

// The module's constants (its upper-case exports), its enumerations (frozen objects of
// strings, as `SagaStatus`), and the core's tables as the native part beside it gives them.
function constants(file) {
  const mod = require(path.resolve(file))
  const native = require(path.join(path.dirname(path.resolve(file)), 'native.js'))
  const exports = {}
  const enums = {}
  for (const [name, value] of Object.entries(mod)) {
    if (/^[A-Z][A-Z0-9_]*$/.test(name)) exports[name] = value
    else if (
      value !== null &&
      typeof value === 'object' &&
      Object.isFrozen(value) &&
      Object.values(value).every((v) => typeof v === 'string')
    ) {
      enums[name] = { ...value }
    }
  }
  return { exports, enums, table: { constants: native.constants(), options: native.optionTable() } }
}

const args = process.argv.slice(2)
if (args[0] === '--constants') {
  process.stdout.write(JSON.stringify(constants(args[1]), null, 1) + '\n')
} else if (args[0] === '--runtime') {
  process.stdout.write(JSON.stringify(runtime(args[1]), null, 1) + '\n')
} else {
  process.stdout.write(JSON.stringify(surface(args[0]), null, 1) + '\n')
}

module.exports = grammar({
  name: 'pkl',
  extras: $ => [/\s/, $.lineComment],
  rules: {
    module: $ => repeat($._moduleMember),
    _moduleMember: $ => choice($.classProperty, $.clazz),
    clazz: $ => seq('class', $.identifier, optional(seq('extends', $.identifier)), '{', repeat($.classProperty), '}'),
    classProperty: $ => seq($.identifier, optional(seq(':', $.identifier)), optional(seq('=', $._expr))),
    _expr: $ => choice($.identifier, $.stringConstant, $.intLiteral),
    stringConstant: $ => /"[^"]*"/,
    intLiteral: $ => /\d+/,
    identifier: $ => /[A-Za-z_][A-Za-z0-9_]*/,
    lineComment: $ => token(seq('//', /.*/)),
  }
});

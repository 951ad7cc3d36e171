//! Tokens of a statement, read lazily left to right.
//!
//! The lexer never looks back and never looks further ahead than the token
//! it is reading, so a statement of `n` bytes costs `O(n)` however it is
//! written, and errors come out in the order a reader meets them.

/// A problem found at a byte offset; turned into a [`crate::ParseError`]
/// (with line and column) once, at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub offset: usize,
    pub message: String,
}

impl Error {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        Error {
            offset,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: keyword or unquoted identifier; its text is the source.
    Word,
    /// A run of ASCII digits.
    Number,
    /// `` `name` ``, with doubled backquotes undone.
    QuotedIdent(String),
    /// `'text'` or `"text"`, with escapes undone.
    Str(String),
    Dot,
    Comma,
    LParen,
    RParen,
    Eq,
    Semi,
    /// Any other character; the parser names it in its error.
    Other(char),
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte offsets into the statement.
    pub start: usize,
    pub end: usize,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    pub fn src(&self) -> &'a str {
        self.src
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Skips whitespace, `-- line` comments and `/* block */` comments.
    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(i) => self.pos += 2 + i + 2,
                    None => {
                        return Err(Error::new(
                            self.pos,
                            "unterminated comment: \"/*\" without \"*/\"",
                        ))
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token, Error> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.rest().chars().next() else {
            return Ok(Token {
                kind: Kind::End,
                start,
                end: start,
            });
        };
        let kind = match c {
            '.' => Kind::Dot,
            ',' => Kind::Comma,
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '=' => Kind::Eq,
            ';' => Kind::Semi,
            '\'' | '"' => return self.string(c),
            '`' => return self.quoted_ident(),
            c if is_word_char(c) => {
                let rest = self.rest();
                let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                self.pos += len;
                let kind = if rest[..len].bytes().all(|b| b.is_ascii_digit()) {
                    Kind::Number
                } else {
                    Kind::Word
                };
                return Ok(Token {
                    kind,
                    start,
                    end: self.pos,
                });
            }
            other => Kind::Other(other),
        };
        self.pos += c.len_utf8();
        Ok(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    /// A string in `quote`s: backslash escapes as in StarRocks (and MySQL),
    /// and a doubled quote stands for one.
    fn string(&mut self, quote: char) -> Result<Token, Error> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    '0' => out.push('\0'),
                    'Z' => out.push('\u{1a}'),
                    // Kept as written, so LIKE patterns keep their meaning.
                    '%' | '_' => {
                        out.push('\\');
                        out.push(e);
                    }
                    other => out.push(other),
                }
            } else if c == quote {
                let after = start + 1 + i + c.len_utf8();
                if self.src[after..].starts_with(quote) {
                    out.push(quote);
                    chars.next();
                } else {
                    self.pos = after;
                    return Ok(Token {
                        kind: Kind::Str(out),
                        start,
                        end: after,
                    });
                }
            } else {
                out.push(c);
            }
        }
        Err(Error::new(
            start,
            format!("unterminated string: no closing {quote} for the one here"),
        ))
    }

    /// An identifier in backquotes; a doubled backquote stands for one.
    fn quoted_ident(&mut self) -> Result<Token, Error> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '`' {
                out.push(c);
                continue;
            }
            let after = start + 1 + i + 1;
            if self.src[after..].starts_with('`') {
                out.push('`');
                chars.next();
                continue;
            }
            if out.is_empty() {
                return Err(Error::new(start, "empty identifier ``"));
            }
            self.pos = after;
            return Ok(Token {
                kind: Kind::QuotedIdent(out),
                start,
                end: after,
            });
        }
        Err(Error::new(
            start,
            "unterminated identifier: no closing ` for the one here",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Result<Vec<Kind>, Error> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token()?;
            if t.kind == Kind::End {
                return Ok(out);
            }
            out.push(t.kind);
        }
    }

    fn s(v: &str) -> Kind {
        Kind::Str(v.to_string())
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(kinds(r"'a\'b'").unwrap(), vec![s("a'b")]);
        assert_eq!(kinds(r#""a\"b""#).unwrap(), vec![s("a\"b")]);
        assert_eq!(kinds("'it''s'").unwrap(), vec![s("it's")]);
        assert_eq!(kinds(r#""say ""hi""""#).unwrap(), vec![s("say \"hi\"")]);
        assert_eq!(kinds(r#"'a"b' "a'b""#).unwrap(), vec![s("a\"b"), s("a'b")]);
        assert_eq!(
            kinds(r"'\n\t\r\b\0\Z\\\q\%\_'").unwrap(),
            vec![s("\n\t\r\u{8}\0\u{1a}\\q\\%\\_")]
        );
        assert_eq!(kinds("''").unwrap(), vec![s("")]);
        assert_eq!(kinds("'é→x'").unwrap(), vec![s("é→x")]);
    }

    #[test]
    fn unterminated() {
        assert_eq!(kinds("x 'abc").unwrap_err().offset, 2);
        assert_eq!(kinds(r"'abc\'").unwrap_err().offset, 0);
        assert_eq!(kinds(r"'abc\").unwrap_err().offset, 0);
        assert_eq!(kinds("`abc").unwrap_err().offset, 0);
        assert_eq!(kinds("a /* b").unwrap_err().offset, 2);
        assert_eq!(kinds("``").unwrap_err().message, "empty identifier ``");
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(
            kinds("`a``b` `x y`").unwrap(),
            vec![
                Kind::QuotedIdent("a`b".into()),
                Kind::QuotedIdent("x y".into())
            ]
        );
    }

    #[test]
    fn comments_words_and_punctuation() {
        assert_eq!(
            kinds("a -- c\n/* d */ 12 b1.c,();= @").unwrap(),
            vec![
                Kind::Word,
                Kind::Number,
                Kind::Word,
                Kind::Dot,
                Kind::Word,
                Kind::Comma,
                Kind::LParen,
                Kind::RParen,
                Kind::Semi,
                Kind::Eq,
                Kind::Other('@'),
            ]
        );
        assert_eq!(kinds("-- only a comment").unwrap(), vec![]);
        assert_eq!(
            kinds("- -").unwrap(),
            vec![Kind::Other('-'), Kind::Other('-')]
        );
    }
}

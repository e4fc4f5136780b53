'use strict'
require('./conformance').conformance('file')

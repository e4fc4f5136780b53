'use strict'
require('./conformance').conformance('memory')
